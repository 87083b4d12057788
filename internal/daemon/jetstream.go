package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// export is the host log's copy to NATS JetStream (export_jetstream): every
// line the host log formats (the kernel's records, the daemon's own
// DAEMON_* records, a listener's lines) is pushed to a bounded queue of
// its own, which never blocks the host log, and a Publisher drains it.
//
// The host log hands over its whole written buffer (hostlog.Options.Tap:
// up to 64 KiB of lines, once per write to the file) and gets an empty
// one back, so that the export costs the receiving goroutine a lock and a
// wake per buffer, no copy; the export's own goroutine (split) cuts the
// buffers into lines and pushes them to the queue. Lines the host log
// does not keep (write_logs no, suspended) and those of an ENRICHED log
// come one at a time (hostlog.Options.OnLine, add) and are copied into a
// buffer of the export's own, in the same order. When split falls behind
// by more than exportPending buffers, the goroutine handing one over
// pushes them all itself (its queue drops its oldest copies when full and
// counts them, as any target's does): the host log never waits for the
// network.
type export struct {
	q      *queue.Queue
	p      *jetstream.Publisher
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done is closed
	// flushLog hands the host log's buffered lines over (before stop).
	flushLog func()

	mu    sync.Mutex // guards the fields below, never held while pushing
	bufs  [][]byte   // buffers of whole lines, oldest first
	loose bool       // the last of bufs is add's: it may grow
	free  [][]byte   // emptied buffers, for Tap and add
	spare [][]byte   // split's emptied list, to become bufs again
	wake  chan struct{}

	// pushMu is held by whoever pushes buffers to the queue (split, or
	// the host log's goroutine when split is behind), so that they go in
	// order.
	pushMu sync.Mutex
	batch  [][]byte
	// selfPushes counts the times the host log's goroutine pushed the
	// buffers itself (split was behind).
	selfPushes atomic.Uint64
}

// exportPending is how many buffers (of up to 80 KiB) may wait for split
// before the goroutine handing one over pushes them itself: 20 MiB at
// most, a burst of about 60,000 records at the host log's full speed
// while split gets no CPU. With 16, a loaded machine's bursts made the
// host log's goroutine push them about once per 6,000 records
// (docs/BENCHMARKS.md).
const exportPending = 256

// exportFree is how many emptied buffers are kept for reuse.
const exportFree = 16

// exportLoose is the size at which add's buffer is handed to split.
const exportLoose = 64 << 10

// exportPush is how many lines are pushed to the queue at once.
const exportPush = 256

// newExport returns an export to q with its split goroutine, which
// ctx ends.
func newExport(ctx context.Context, q *queue.Queue) *export {
	e := &export{q: q, done: make(chan struct{}), wake: make(chan struct{}, 1)}
	go e.split(ctx)
	return e
}

// startExport opens the export's queue (its spool in
// STATE_DIR/export/jetstream) and starts its publisher. Nil config, nil
// export. The publisher runs apart from the daemon's services, so that it
// outlives them and takes DAEMON_END: stop ends it.
func (d *Daemon) startExport(jc *config.JetStream) (*export, error) {
	if jc == nil {
		return nil, nil
	}
	log := d.log.Named("export")
	lim := queue.Limits{Memory: jc.Memory, Spool: jc.Spool}
	var dir *beneath.Dir
	if lim.Spool != 0 {
		root := filepath.Join(d.cfg().StateDir, "export")
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, fmt.Errorf("export_jetstream: %w", err)
		}
		rd, err := beneath.Open(root)
		if err != nil {
			return nil, fmt.Errorf("export_jetstream: %w", err)
		}
		dir, err = rd.MkdirAll("jetstream", 0o700)
		rd.Close()
		if err != nil {
			return nil, fmt.Errorf("export_jetstream: %w", err)
		}
	}
	q, err := queue.OpenDir(dir, lim, log)
	if err != nil {
		if dir != nil {
			dir.Close()
		}
		return nil, fmt.Errorf("export_jetstream: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(d.life))
	e := newExport(ctx, q)
	e.cancel = cancel
	e.flushLog = func() {
		if w := d.hlog; w != nil {
			w.Flush()
		}
	}
	e.p = &jetstream.Publisher{
		Conn:    jetstream.Conn{URL: jc.URL, Credentials: jc.Credentials, InboxPrefix: jc.InboxPrefix},
		Subject: jc.Subject, Stream: jc.Stream, Queue: q, Logger: log,
	}
	if err := e.p.Check(); err != nil {
		cancel()
		q.Close()
		return nil, fmt.Errorf("export_jetstream: %w", err)
	}
	go func() {
		defer close(e.done)
		if e.err = e.p.Run(ctx); e.err != nil {
			d.log.Error("the jetstream export stopped", "error", e.err)
			e.err = fmt.Errorf("jetstream export: %w", e.err)
		}
	}()
	d.log.Info("exporting the host log to jetstream", "url", jc.URL, "subject", jc.Subject, "stream", jc.Stream)
	return e, nil
}

// tap takes the host log's written buffer (hostlog.Options.Tap) and
// returns an empty one. With no export it gives the buffer back.
func (e *export) tap(lines []byte) []byte {
	if e == nil {
		return lines[:0]
	}
	e.mu.Lock()
	e.bufs = append(e.bufs, lines)
	e.loose = false
	next := e.takeFree()
	behind := len(e.bufs) > exportPending
	e.mu.Unlock()
	if behind {
		e.selfPushes.Add(1)
		e.pushAll()
	} else {
		e.signal()
	}
	if next == nil {
		next = make([]byte, 0, cap(lines))
	}
	return next
}

// add takes a copy of one line (hostlog.Options.OnLine: one the host log
// does not keep, or of an ENRICHED log); it is handed to split with its
// buffer once that is full, or at the next flush or tap.
func (e *export) add(line []byte) {
	if e == nil {
		return
	}
	e.mu.Lock()
	if !e.loose {
		b := e.takeFree()
		if b == nil {
			b = make([]byte, 0, exportLoose+16<<10)
		}
		e.bufs = append(e.bufs, b)
		e.loose = true
	}
	last := &e.bufs[len(e.bufs)-1]
	*last = append(append(*last, line...), '\n')
	full := len(*last) >= exportLoose
	if full {
		e.loose = false
	}
	e.mu.Unlock()
	if full {
		e.signal()
	}
}

// takeFree returns an emptied buffer, or nil; e.mu is held.
func (e *export) takeFree() []byte {
	n := len(e.free)
	if n == 0 {
		return nil
	}
	b := e.free[n-1]
	e.free = e.free[:n-1]
	return b
}

// signal wakes split.
func (e *export) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// flush has split push what add holds. The receiving goroutine calls it
// when the source goes idle, a listener after each line, the host log
// after each of the daemon's own records.
func (e *export) flush() {
	if e == nil {
		return
	}
	e.signal()
}

// split pushes the buffers handed over to the queue, line by line, until
// ctx ends.
func (e *export) split(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		}
		e.pushAll()
	}
}

// pushAll pushes every buffer handed over, in order, and keeps them for
// reuse.
func (e *export) pushAll() {
	e.pushMu.Lock()
	defer e.pushMu.Unlock()
	for {
		e.mu.Lock()
		work := e.bufs
		e.bufs, e.spare, e.loose = e.spare[:0], nil, false
		e.mu.Unlock()
		if len(work) == 0 {
			e.mu.Lock()
			e.spare = work
			e.mu.Unlock()
			return
		}
		for _, b := range work {
			e.push(b)
		}
		e.mu.Lock()
		for i, b := range work {
			if len(e.free) < exportFree {
				e.free = append(e.free, b[:0])
			}
			work[i] = nil
		}
		e.spare = work[:0]
		e.mu.Unlock()
	}
}

// push pushes the lines of b (each ends with a newline) to the queue,
// exportPush at a time, without their newlines.
func (e *export) push(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		if i > 0 {
			e.batch = append(e.batch, b[:i])
		}
		b = b[min(i+1, len(b)):]
		if len(e.batch) == exportPush {
			e.q.PushAll(e.batch)
			e.batch = e.batch[:0]
		}
	}
	if len(e.batch) > 0 {
		e.q.PushAll(e.batch)
		e.batch = e.batch[:0]
	}
}

// stop gives the publisher up to wait to empty the queue, then stops it;
// what is left stays in the spool, if there is one. It returns the
// publisher's error. A second stop does nothing more.
func (e *export) stop(wait time.Duration) error {
	if e == nil {
		return nil
	}
	if e.flushLog != nil {
		e.flushLog()
	}
	e.pushAll()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	e.q.WaitEmpty(ctx)
	cancel()
	e.cancel()
	<-e.done
	e.q.Close()
	return e.err
}

// status is the export's figures for ctl status; nil for no export.
func (e *export) status() *control.ExportStatus {
	if e == nil {
		return nil
	}
	st, qs := e.p.Status(), e.q.Stats()
	return &control.ExportStatus{URL: st.URL, Subject: st.Subject, Stream: st.Stream, Connected: st.Connected,
		Queued: uint64(qs.MemoryItems + qs.SpoolItems), Dropped: qs.Dropped.Total(),
		Acked: st.Acked, Duplicates: st.Duplicates, Retried: st.Retried, InFlight: st.InFlight,
		Published: st.Published, Connects: st.Connects, LastError: st.LastError, LastErrorTime: st.LastErrorTime}
}

// consumeStatus is consume mode's consumer's figures for ctl status and
// the metrics; nil in the other modes.
func (d *Daemon) consumeStatus() *control.ConsumeStatus {
	c := d.consumer.Load()
	if c == nil {
		return nil
	}
	st := c.Status()
	return &control.ConsumeStatus{URL: st.URL, Stream: st.Stream, Durable: st.Durable, Subject: st.Filter, Connected: st.Connected,
		Written: st.Written, Acked: st.Acked, Redelivered: st.Redelivered, Pending: st.Pending, LostNotices: st.LostNotices,
		Replaced: st.Replaced, Truncated: st.Truncated, Refused: st.Refused, Connects: st.Connects,
		LastError: st.LastError, LastErrorTime: st.LastErrorTime}
}

// runConsume runs consume mode: records come from a JetStream durable
// consumer (a tenant's records from every host), each is written to this
// daemon's log before the message is acknowledged, and routed to the
// containers registered here as in listener mode.
func (d *Daemon) runConsume(ctx context.Context, sigs <-chan os.Signal) error {
	cfg := d.cfg()
	cc := cfg.ConsumeJetStream
	var err error
	if d.hlog, err = d.openLog(cfg); err != nil {
		return err
	}
	c := &jetstream.Consumer{
		Conn:   jetstream.Conn{URL: cc.URL, Credentials: cc.Credentials, InboxPrefix: cc.InboxPrefix},
		Stream: cc.Stream, Durable: cc.Durable, Filter: cc.Subject,
		Log: consumeLog{d}, Logger: d.log.Named("consume"),
		// The durable's name is a file name (letters, digits, '-', '_').
		SeqFile: filepath.Join(cfg.StateDir, "consume", cc.Durable+".seq"),
	}
	if err := c.Check(); err != nil {
		d.hlog.Close()
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.SeqFile), 0o700); err != nil {
		d.hlog.Close()
		return fmt.Errorf("consume_jetstream: %w", err)
	}
	d.consumer.Store(c)
	if err := d.startContainers(nil, d.attributor(d.life, false)); err != nil {
		err = errors.Join(err, d.stopServices())
		d.hlog.Close()
		return err
	}
	d.hlog.Daemon(record.TypeDaemonStart, d.startText()+" source=jetstream")
	stopSignals := d.handleSignals(ctx, sigs)
	d.log.Info("consuming from jetstream", "url", cc.URL, "stream", cc.Stream, "durable", cc.Durable, "subject", cc.Subject, "log", cfg.Log.Path)
	runErr := c.Run(ctx)
	stopSignals()
	svcErr := d.stopServices()
	d.hlog.Daemon(record.TypeDaemonEnd, endText())
	return errors.Join(runErr, svcErr, d.hlog.Close())
}

// consumeLog is the log a Consumer writes: each line goes the way of every
// received line (ingestLine); the Consumer flushes before it acknowledges.
type consumeLog struct{ d *Daemon }

func (l consumeLog) WriteLine(line []byte) error { return l.d.ingestLine(line, false) }

func (l consumeLog) Flush() error { return l.d.hlog.Flush() }
