package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// export is the host log's copy to NATS JetStream (export_jetstream): every
// line the host log formats (hostlog.Options.OnLine: the kernel's records,
// the daemon's own DAEMON_* records, a listener's lines) is pushed to a
// bounded queue of its own, which never blocks the host log, and a
// Publisher drains it.
type export struct {
	q      *queue.Queue
	p      *jetstream.Publisher
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's, once done is closed
	// Lines wait here to be pushed exportBatch at a time (or at the next
	// flush): one lock of the queue and one wake of the publisher for all
	// of them. mu guards them: the host log gives lines under its own
	// lock, from whichever goroutine writes, and the receiving goroutine
	// flushes when the source goes idle.
	mu    sync.Mutex
	slab  []byte
	ends  []int
	batch [][]byte
}

// exportBatch is how many lines the export pushes at once.
const exportBatch = 64

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
	e := &export{q: q, done: make(chan struct{})}
	e.p = &jetstream.Publisher{
		Conn:    jetstream.Conn{URL: jc.URL, Credentials: jc.Credentials, InboxPrefix: jc.InboxPrefix},
		Subject: jc.Subject, Stream: jc.Stream, Queue: q, Logger: log,
	}
	if err := e.p.Check(); err != nil {
		q.Close()
		return nil, fmt.Errorf("export_jetstream: %w", err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(d.life))
	e.cancel = cancel
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

// add takes a copy of one line of the host log (hostlog.Options.OnLine);
// it is pushed with the next exportBatch, or at the next flush.
func (e *export) add(line []byte) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.slab = append(e.slab, line...)
	e.ends = append(e.ends, len(e.slab))
	if len(e.ends) >= exportBatch {
		e.flushLocked()
	}
	e.mu.Unlock()
}

// flush pushes the lines that add holds. The receiving goroutine calls it
// when the source goes idle, a listener after each line, the host log
// after each of the daemon's own records.
func (e *export) flush() {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.flushLocked()
	e.mu.Unlock()
}

func (e *export) flushLocked() {
	if len(e.ends) == 0 {
		return
	}
	e.batch = e.batch[:0]
	start := 0
	for _, end := range e.ends {
		e.batch = append(e.batch, e.slab[start:end])
		start = end
	}
	e.q.PushAll(e.batch)
	e.slab, e.ends = e.slab[:0], e.ends[:0]
}

// stop gives the publisher up to wait to empty the queue, then stops it;
// what is left stays in the spool, if there is one. It returns the
// publisher's error. A second stop does nothing more.
func (e *export) stop(wait time.Duration) error {
	if e == nil {
		return nil
	}
	e.flush()
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
	}
	if err := c.Check(); err != nil {
		d.hlog.Close()
		return err
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
