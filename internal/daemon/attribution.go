package daemon

import (
	"context"

	"github.com/auditd-ns/auditd-ns/pkg/procs"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// attributor returns how the router finds a record's container on a stock
// kernel (nil on a patched kernel, where records carry their chain): the
// process-events tracker of package procs, which keeps where each process
// was and when, or, when it cannot start, procs.Now.
func (d *Daemon) attributor(ctx context.Context, contid bool) router.Attributor {
	if contid {
		d.startIDTracker(ctx)
		return nil
	}
	tr, err := procs.NewTracker(d.log.Named("cgroups"), procs.Options{})
	if err != nil {
		d.log.Warn("the process-events tracker is not available; attributing by /proc at routing time, which misses processes that have already exited", "error", err)
		return procs.NewNow(d.log.Named("cgroups"))
	}
	ctx, cancel := context.WithCancel(ctx)
	d.tracker, d.trackerStop = tr, cancel
	d.serve("process-events tracker", func() error { return tr.Run(ctx) })
	return tr
}

// startIDTracker starts, on a patched kernel, the process-events tracker
// that follows the processes of containers known by contid for their
// views (procs.Options.ContID); without it their copies keep the host's
// values (attachView warns).
func (d *Daemon) startIDTracker(ctx context.Context) {
	tr, err := procs.NewTracker(d.log.Named("contids"), procs.Options{ContID: true})
	if err != nil {
		d.log.Warn("the process-events tracker is not available: containers known by contid keep the host's pids and ids in their copies", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	d.idTracker, d.idTrackerStop = tr, cancel
	d.serve("process-events tracker (contids)", func() error { return tr.Run(ctx) })
}
