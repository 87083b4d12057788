package queue

import (
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

// Open returns the queue whose spool lives in dir, creating dir if needed,
// and resumes what a previous queue left there: items keep their Seq and
// new ones continue after them. With Limits.Spool zero, dir is not used and
// may be empty. A nil logger logs nothing. Only one open queue may use a
// directory at a time. dir is opened by path once (it must not be a
// symlink itself); see OpenDir.
func Open(dir string, lim Limits, logger hclog.Logger) (*Queue, error) {
	if lim.Spool == 0 || dir == "" {
		return OpenDir(nil, lim, logger)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, &Error{Op: "opening", Dir: dir, Err: err}
	}
	d, err := beneath.Open(dir)
	if err != nil {
		return nil, &Error{Op: "opening", Dir: dir, Err: err}
	}
	q, err := OpenDir(d, lim, logger)
	if err != nil {
		d.Close()
	}
	return q, err
}

// OpenDir is Open on a directory held open: the spool's files are opened,
// created and removed through d's descriptor only, never by path, so no
// symlink in it is followed. The queue takes d over (Close closes it) when
// it returns no error. d may be nil when Limits.Spool is zero.
func OpenDir(d *beneath.Dir, lim Limits, logger hclog.Logger) (*Queue, error) {
	if lim.Memory < 1 || lim.Memory > 1<<31 {
		return nil, fmt.Errorf("opening queue: memory limit %d: must be from 1 byte to 2 GiB", lim.Memory)
	}
	if lim.Spool != 0 && lim.Spool < MinSpool {
		return nil, fmt.Errorf("opening queue: spool limit %d: must be 0 (no spool) or at least %d", lim.Spool, MinSpool)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	q := &Queue{
		lim:     lim,
		log:     logger,
		notify:  make(chan struct{}, 1),
		done:    make(chan struct{}),
		nextSeq: 1,
		memHead: 1,
		readSeq: 1,
	}
	if lim.Spool == 0 {
		return q, nil
	}
	if d == nil {
		return nil, errors.New("opening queue: a spool needs a directory")
	}
	if err := q.openSpool(d); err != nil {
		return nil, &Error{Op: "opening", Dir: d.Path(), Err: err}
	}
	return q, nil
}

func (q *Queue) openSpool(d *beneath.Dir) error {
	st, err := openState(d)
	if err != nil {
		return err
	}
	sp := newSpool(d, q.lim.Spool)
	if err := sp.recoverSegments(q.log); err != nil {
		st.close()
		return err
	}
	q.sp, q.st = sp, *st
	q.resume()
	return nil
}

// resume sets the sequence numbers from the state file and the spool, and
// counts what a crash lost.
func (q *Queue) resume() {
	pushed, committed := q.st.get(offPushed), q.st.get(offCommitted)
	spooled, _ := q.sp.last()
	q.commit = committed
	q.nextSeq = max(pushed, spooled) + 1
	q.memHead, q.readSeq = q.nextSeq, committed+1
	q.gaps, _ = dropGaps(q.st.gaps(), committed)
	if q.st.get(offClean) == 0 {
		// Killed: what was in memory is gone. It is exactly the items
		// after the spool's last and after the last commit.
		if kept := max(spooled, committed); pushed > kept {
			lost := pushed - kept
			q.gaps = addGap(q.gaps, kept+1, q.nextSeq, lost, 0, 0)
			q.stats.Dropped.Crash = lost
			q.log.Warn("the previous run stopped without closing the queue; copies held in memory are lost",
				"dir", q.sp.dir, "lost", lost)
		}
	}
	q.st.put(offClean, 0)
	q.st.putGaps(q.gaps)
}

// Close stops the queue and wakes a waiting Read. With a spool, it first
// writes every uncommitted item still in memory to the spool, beyond the
// spool limit if need be, so that the next Open resumes them; without one,
// they are dropped and counted as closed.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	close(q.done)
	if q.sp == nil {
		q.stats.Dropped.Closed += uint64(q.mem.count)
		q.mem = ring{}
		return nil
	}
	var errs []error
	for q.mem.count > 0 {
		seq := q.memHead
		a, b := q.mem.front()
		lost, err := q.sp.appendItem(seq, a, b)
		q.mem.pop()
		q.memHead++
		if err != nil {
			errs = append(errs, err)
			q.spoolFailed(lost, seq, err)
		}
	}
	q.mem = ring{}
	if kept, to, err := q.sp.close(); err != nil {
		errs = append(errs, err)
		q.spoolFailed(kept, to, err)
	}
	q.st.putGaps(q.gaps)
	if len(errs) == 0 {
		q.st.put(offClean, 1)
	}
	if err := q.st.close(); err != nil {
		errs = append(errs, err)
	}
	q.sp.d.Close()
	if err := errors.Join(errs...); err != nil {
		return &Error{Op: "closing", Dir: q.sp.dir, Err: err}
	}
	return nil
}
