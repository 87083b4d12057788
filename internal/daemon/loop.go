package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// loop receives records until ctx ends, handling the signals that arrive
// on sigs and polling the kernel's counters beside it.
func (d *Daemon) loop(ctx context.Context, sigs <-chan os.Signal) error {
	done := make(chan error, 1)
	go func() { done <- d.receive() }()
	tick := time.NewTicker(d.cfg().LostCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			d.kern.Interrupt()
			<-done
			return nil
		case err := <-done:
			return err
		case s := <-sigs:
			d.signal(s)
		case <-tick.C:
			d.poll()
		}
	}
}

// receive writes every record to the host log, in kernel order. It returns
// nil when interrupted.
func (d *Daemon) receive() error {
	idle := func() { d.hlog.Flush(); d.export.flush() }
	var lastErr time.Time
	for {
		typ, data, err := d.kern.Receive(idle)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, source.ErrClosed):
			return nil
		case errors.Is(err, unix.ENOBUFS):
			d.count(func(s *Stats) { s.ReceiveError++ })
			if time.Since(lastErr) > time.Second {
				lastErr = time.Now()
				d.log.Warn("the kernel dropped records: receive buffer overflow", "error", err)
			}
			continue
		default:
			return err
		}
		if typ == record.TypeReplace {
			d.replaced(data)
			continue
		}
		d.ingest(typ, data)
	}
}

// ingest is the path of every record from the kernel, on the receiving
// goroutine: the host log first (which gives its line to the JetStream
// export, hostlog.Options.OnLine), then auditd's plugins (each through a
// queue of its own), then the rest (pass). A new consumer of every host
// record goes here, after the host log, and must not block.
func (d *Daemon) ingest(typ uint16, data []byte) {
	d.hlog.Write(typ, data)
	d.plugins.Submit(typ, data)
	d.pass(typ, data)
}

// pass hands a record that is in the host log to the router (copies to the
// containers) and the books of namespaces and of contid chains (from the
// kernel only: a listener's peers are not trusted with chains). It is the
// one place that every record passes after the host log, from the kernel
// (ingest) or from a listener's peer (ingestLine).
func (d *Daemon) pass(typ uint16, data []byte) {
	d.router.Submit(typ, data)
	d.namespaces.note(typ, data)
	if d.kern != nil {
		d.chains.note(typ, data)
		if d.idTracker != nil && typ == record.TypeContainerOp {
			d.noteSet(data)
		}
	}
	d.records.Add(1)
}

// replaced answers the kernel's REPLACE probe, sent when some process asks
// to become the audit daemon (or to unregister). Its payload is the asking
// pid in binary, not a record, so it is not logged as one.
func (d *Daemon) replaced(data []byte) {
	if len(data) < 4 {
		return
	}
	pid := binary.NativeEndian.Uint32(data)
	if int(pid) != os.Getpid() {
		d.log.Warn("another process asked to become the kernel's audit daemon; refused by the kernel", "pid", pid)
	}
}

func (d *Daemon) count(f func(*Stats)) {
	d.statMu.Lock()
	f(&d.stats)
	d.statMu.Unlock()
}

// checkForeign logs, and records in the host log, messages that another
// process sent to the daemon's netlink socket since the last poll: they
// were dropped, but someone with CAP_NET_ADMIN tried to forge records.
func (d *Daemon) checkForeign() {
	d.reportRise(&d.stats.Foreign, d.kern.Foreign(), "foreign-netlink", "dropped",
		"dropped netlink messages that did not come from the kernel")
}

// checkOverflow logs, and records in the host log, records the router left
// unrouted because too many waited for it: their copies reached no
// container (the router tells every container's queue of them).
func (d *Daemon) checkOverflow() {
	if d.router == nil {
		return
	}
	d.reportRise(&d.stats.RouterOverflow, d.router.Stats().Overflow, "router-overflow", "unrouted",
		"the router fell behind: records were not copied to any container")
}

// reportRise stores the counter n in *last (a field of d.stats) and, when
// it rose since, warns and writes DAEMON_ERR op=OP KEY=N new=RISE to the
// host log.
func (d *Daemon) reportRise(last *uint64, n uint64, op, key, warning string) {
	d.statMu.Lock()
	prev := *last
	*last = n
	d.statMu.Unlock()
	if n > prev {
		d.log.Warn(warning, "new", n-prev, "total", n)
		d.hlog.Daemon(record.TypeDaemonErr, record.DaemonText(op, fmt.Sprintf("%s=%d new=%d", key, n, n-prev), false))
	}
}

// poll reads the kernel's lost and backlog counters, and writes a record to
// the host log when lost has risen.
func (d *Daemon) poll() {
	d.checkForeign()
	d.checkOverflow()
	st, err := d.ctl.Status()
	if err != nil {
		d.log.Warn("polling the kernel's audit status", "error", err)
		return
	}
	d.statMu.Lock()
	prev, prevWait := d.stats.KernelLost, d.stats.BacklogWait
	d.stats.KernelLost, d.stats.Backlog, d.stats.LastPoll = st.Lost, st.Backlog, time.Now()
	d.stats.BacklogWait = st.BacklogWaitTimeActual
	d.statMu.Unlock()
	if mayStrand(st, prevWait) {
		d.wakeBacklogWaiters()
	}
	if st.Lost > prev {
		d.chains.reset() // an op=drop may be among the lost
		delta := st.Lost - prev
		d.log.Warn("the kernel lost audit records", "lost", st.Lost, "new", delta, "backlog", st.Backlog)
		d.hlog.Daemon(record.TypeDaemonErr, record.DaemonText("kernel-lost", fmt.Sprintf("lost=%d new=%d backlog=%d backlog_limit=%d",
			st.Lost, delta, st.Backlog, st.BacklogLimit), false))
	}
	d.log.Debug("kernel status", "lost", st.Lost, "backlog", st.Backlog, "records", d.Stats().Records)
}

// mayStrand reports whether audited tasks may be asleep on the kernel's
// backlog with nobody to wake them, from the status that a poll got:
//
//   - the backlog is empty and tasks slept on it since the last poll
//     (prevWait): the kernel's missed wake-up, see wakeBacklogWaiters;
//   - the backlog was over its limit when the kernel answered. The kernel
//     then puts the asking thread (this poll's) to sleep on the same wait
//     queue as the audited tasks, as an exclusive waiter, and kauditd
//     wakes one such waiter per pass over its queue: the poll's wake-up
//     may have been an audited task's, which then sleeps until the next
//     record or backlog_wait_time (60 s by default) with the queue empty.
func mayStrand(st *source.Status, prevWait uint32) bool {
	if st.BacklogLimit > 0 && st.Backlog > st.BacklogLimit {
		return true
	}
	return st.Backlog == 0 && st.BacklogWaitTimeActual > prevWait
}

// wakeBacklogWaiters makes the kernel log one record so that kauditd runs
// and wakes tasks sleeping on a full backlog. The kernel checks the backlog
// and then goes to sleep; when kauditd drains the queue in between, its
// wake-up is missed and the task sleeps for the whole backlog_wait_time
// (minutes) with the queue empty. Any new record wakes it; this one says
// why it was written.
func (d *Daemon) wakeBacklogWaiters() {
	err := d.ctl.UserMessage("op=wake-backlog-waiters msg=audit tasks slept on an empty backlog res=success")
	if err != nil {
		d.log.Warn("waking tasks that wait on the kernel's backlog", "error", err)
		return
	}
	d.log.Info("woke tasks sleeping on an empty kernel backlog (a missed wake-up in the kernel)")
}

// Stats returns a snapshot of the daemon's counters.
func (d *Daemon) Stats() Stats {
	d.statMu.Lock()
	st := d.stats
	d.statMu.Unlock()
	st.Records = d.records.Load()
	return st
}

// handleSignals handles sigs on a goroutine of its own until ctx ends or
// the returned stop is called; stop returns once that goroutine is done.
// Listener and consume modes use it: their sources write the log from
// goroutines of their own.
func (d *Daemon) handleSignals(ctx context.Context, sigs <-chan os.Signal) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				d.signal(s)
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

func (d *Daemon) signal(s os.Signal) {
	switch s {
	case syscall.SIGUSR1:
		d.log.Info("rotating the log (SIGUSR1)")
		if err := d.hlog.Rotate(); err != nil {
			d.log.Error("rotating the log", "error", err)
		}
	case syscall.SIGUSR2:
		d.log.Info("resuming logging (SIGUSR2)")
		d.hlog.Resume()
	case syscall.SIGHUP:
		d.reload()
	}
}

// stop unregisters, keeps every record that arrived meanwhile, writes
// DAEMON_END and closes.
func (d *Daemon) stop() error {
	var errs []error
	if err := d.kern.Unregister(); err != nil {
		errs = append(errs, fmt.Errorf("unregistering: %w", err))
	}
	if n := d.kern.Overruns(); n > 0 {
		d.count(func(s *Stats) { s.ReceiveError += n })
		d.log.Warn("the kernel dropped records while the daemon unregistered: receive buffer overflow", "times", n)
	}
	for {
		typ, data, ok := d.kern.Drain()
		if !ok {
			break
		}
		if typ != record.TypeReplace {
			d.ingest(typ, data)
		}
	}
	errs = append(errs, d.stopServices())
	if d.cfg().RulesOnExit == "delete" {
		d.deleteRules()
	}
	d.hlog.Daemon(record.TypeDaemonEnd, endText())
	// After DAEMON_END, which the plugins and the export get too.
	errs = append(errs, d.plugins.Stop())
	errs = append(errs, d.export.stop(2*time.Second))
	errs = append(errs, d.hlog.Close(), d.kern.Close(), d.ctl.Close())
	d.log.Info("stopped and unregistered")
	return errors.Join(errs...)
}
