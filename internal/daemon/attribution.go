package daemon

import (
	"context"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/router"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// attributor returns how the router finds a record's container on a stock
// kernel (nil on a patched kernel, where records carry their chain). It
// starts the process-events tracker, which keeps the cgroup of processes
// that have already exited by the time their records are routed.
func (d *Daemon) attributor(ctx context.Context, contid bool) router.Attributor {
	if contid {
		return nil
	}
	tr, err := source.NewCgroupTracker(d.log.Named("cgroups"), source.CgroupOptions{})
	if err != nil {
		d.log.Warn("the process-events tracker is not available; attributing by /proc at routing time, which misses processes that have already exited", "error", err)
		return procAttributor()
	}
	ctx, cancel := context.WithCancel(ctx)
	d.tracker, d.trackerStop = tr, cancel
	d.serve("process-events tracker", func() error { return tr.Run(ctx) })
	a := &cgroupAttributor{tr: tr, dirs: map[string]source.CgroupDir{}, d: d}
	return a.attribute
}

type cgroupAttributor struct {
	tr   *source.CgroupTracker
	d    *Daemon
	mu   sync.Mutex // guards dirs
	dirs map[string]source.CgroupDir
}

func (a *cgroupAttributor) attribute(pid, ppid uint32, dirs []string) int {
	cg, ok := a.tr.Lookup(pid, ppid)
	if !ok {
		return -1
	}
	for i, dir := range dirs {
		if d, ok := a.dir(dir); ok && cg.Within(d) {
			return i
		}
	}
	return -1
}

// dir resolves a registered cgroup directory once.
func (a *cgroupAttributor) dir(path string) (source.CgroupDir, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.dirs[path]; ok {
		return d, d.Dir != ""
	}
	d, err := a.tr.Dir(path)
	if err != nil {
		a.d.log.Warn("a registered cgroup directory is not a cgroup; nothing is attributed to it", "cgroup", path, "error", err)
		d = source.CgroupDir{}
	}
	a.dirs[path] = d
	return d, err == nil
}
