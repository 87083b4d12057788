package queue

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrClosed is returned by Read on a closed queue.
var ErrClosed = errors.New("queue closed")

// MinSpool is the smallest spool limit other than zero.
const MinSpool = 16 << 10

// Limits bounds a queue. Both count the bytes of the records; the memory
// part also keeps 4 bytes per item, and the spool 16 bytes per item and 32
// per segment file.
type Limits struct {
	// Memory is the most bytes held in memory. It must be at least 1.
	Memory int64
	// Spool is the most bytes held on disk once memory is full: zero or at
	// least MinSpool. Zero means
	// no spool: the queue lives in memory only and is lost on Close. The
	// spool directory may also hold the already delivered start of its
	// oldest segment (at most Spool/8, and 16 MiB), and, after Close,
	// everything that was in memory.
	Spool int64
}

// Queue is a bounded queue of record copies for one container. Push never
// blocks; Read, Commit and Rewind are for one reader goroutine, which may
// run alongside the goroutine that pushes. All methods are safe to call at
// the same time.
type Queue struct {
	lim Limits
	log hclog.Logger

	// notify wakes a Read waiting for items; done is closed by Close.
	notify chan struct{}
	done   chan struct{}

	mu      sync.Mutex // guards everything below
	closed  bool
	waiting bool // a Read waits for notify
	mem     ring
	memHead uint64 // seq of the oldest item in mem
	nextSeq uint64 // seq of the next item pushed
	sp      *spool // nil without a spool
	st      state
	readSeq uint64 // next seq Read hands out
	commit  uint64 // every seq up to this one is committed
	gaps    []gap  // copies lost, not yet told to a committing reader
	stats   Stats  // the counters; the queued figures are filled by Stats
	errLog  time.Time

	out    []Item // returned by Read, reused
	outBuf []byte // holds the Data of out
}

// Open returns the queue whose spool lives in dir, creating dir if needed,
// and resumes what a previous queue left there: items keep their Seq and
// new ones continue after them. With Limits.Spool zero, dir is not used and
// may be empty. A nil logger logs nothing. Only one open queue may use a
// directory at a time.
func Open(dir string, lim Limits, logger hclog.Logger) (*Queue, error) {
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
	if dir == "" {
		return nil, errors.New("opening queue: a spool needs a directory")
	}
	if err := q.openSpool(dir); err != nil {
		return nil, fmt.Errorf("opening queue spool %s: %w", dir, err)
	}
	return q, nil
}

func (q *Queue) openSpool(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := openState(dir)
	if err != nil {
		return err
	}
	sp := newSpool(dir, q.lim.Spool)
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

// Push adds a copy of data to the queue. It never blocks: when the queue is
// full it drops the oldest items, and the next item Read returns counts them
// in Lost. Data is copied; the caller may reuse it at once. Pushing to a
// closed queue drops the item and counts it.
func (q *Queue) Push(data []byte) {
	q.mu.Lock()
	if q.closed {
		q.stats.Dropped.Closed++
		q.mu.Unlock()
		return
	}
	q.stats.Pushed++
	if !q.makeRoom(len(data)) {
		q.stats.Dropped.TooLarge++
		q.gaps = addGap(q.gaps, q.nextSeq, q.nextSeq, 1, 0, q.readSeq)
		q.st.putGaps(q.gaps)
		q.mu.Unlock()
		return
	}
	seq := q.nextSeq
	q.nextSeq++
	q.st.put(offPushed, seq)
	if int64(len(data)) <= q.lim.Memory {
		q.mem.push(data)
	} else {
		// Straight to the spool: too big for memory, which makeRoom
		// emptied so that the spool stays in order.
		lost, err := q.sp.appendItem(seq, data, nil)
		q.memHead = q.nextSeq
		if err != nil {
			q.spoolFailed(lost, seq, err)
		}
	}
	if q.waiting {
		q.waiting = false
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
	q.mu.Unlock()
}

// makeRoom frees space for an item of n bytes and reports whether it can be
// queued at all.
func (q *Queue) makeRoom(n int) bool {
	if n > maxItemLen {
		return false
	}
	if int64(n) > q.lim.Memory {
		if q.sp == nil || int64(n)+frameHeaderLen+fileHeaderLen+frameHeaderLen > q.lim.Spool {
			return false
		}
		for q.mem.count > 0 {
			q.evict()
		}
		q.spoolRoom(int64(n) + frameHeaderLen)
		return true
	}
	for !q.mem.grow(n, int(q.lim.Memory)) {
		q.evict()
	}
	return true
}

// evict moves the oldest memory item to the spool, or drops it if there is
// no spool.
func (q *Queue) evict() {
	seq := q.memHead
	a, b := q.mem.front()
	if q.sp == nil {
		q.mem.pop()
		q.memHead++
		q.lose(seq, seq, &q.stats.Dropped.Full, true)
		return
	}
	q.spoolRoom(int64(frameHeaderLen + len(a) + len(b)))
	lost, err := q.sp.appendItem(seq, a, b)
	q.mem.pop()
	q.memHead++
	if err != nil {
		q.spoolFailed(lost, seq, err)
	}
}

// spoolRoom drops the oldest spool segments until n more bytes fit.
func (q *Queue) spoolRoom(n int64) {
	sp := q.sp
	// A new segment costs a file header and, when sealed, a trailer.
	n += fileHeaderLen + frameHeaderLen
	for len(sp.segs) > 0 && sp.bytes+n > sp.limit {
		s := sp.dropHead()
		q.lose(s.first, s.last, &q.stats.Dropped.Full, true)
	}
}

// spoolFailed counts the items (kept, to] that a failed spool write lost.
func (q *Queue) spoolFailed(kept, to uint64, err error) {
	lost := q.lose(kept+1, to, &q.stats.Dropped.SpoolError, false)
	q.logError("spool write failed; copies dropped", "error", err, "lost", lost)
}

// lose records that the items first..last are gone, and returns how many
// of them were not committed. Those the reader had not been given are
// counted in reason and reported in the next item's Lost. With inflight,
// those it had been given are kept apart: they count (as full) only if it
// rewinds; without, they count at once.
func (q *Queue) lose(first, last uint64, reason *uint64, inflight bool) uint64 {
	lo := max(first, q.commit+1)
	var unread, read uint64
	if last >= lo {
		if inflight && q.readSeq > lo {
			read = min(last, q.readSeq-1) - lo + 1
		}
		unread = last - lo + 1 - read
	}
	*reason += unread
	q.gaps = addGap(q.gaps, first, last+1, unread, read, q.readSeq)
	q.st.putGaps(q.gaps)
	return unread + read
}

// logError logs at most one error every ten seconds: errors of the spool
// happen on the per-record path.
func (q *Queue) logError(msg string, args ...any) {
	if now := time.Now(); now.Sub(q.errLog) >= 10*time.Second {
		q.errLog = now
		q.log.Error(msg, append(args, "dir", q.sp.dir)...)
	}
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
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing queue spool %s: %w", q.sp.dir, err)
	}
	return nil
}
