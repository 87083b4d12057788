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
