package daemon

import (
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/procs"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// views are the running containers' procs.Views (view: container on a
// stock kernel, with the process-events tracker), keyed by the running
// container: a replacement starts before the container it replaces stops.
type views struct {
	mu sync.Mutex
	by map[*deliver.Container]*procs.View
}

// attach starts a container's scoped socket and its view.
func (d *Daemon) attach(t *deliver.Container) error {
	if err := d.attachScoped(t); err != nil {
		return err
	}
	d.attachView(t)
	return nil
}

// detach undoes attach.
func (d *Daemon) detach(t *deliver.Container) {
	d.detachView(t)
	d.detachScoped(t)
}

// attachView gives the router the namespaces a container's copies are
// translated into: nil (the host's values) for view: host, the tracker's
// View of its cgroup for view: container.
func (d *Daemon) attachView(t *deliver.Container) {
	c, rt := t.Config(), t.Routing()
	if rt == nil {
		return
	}
	if c.HostView() {
		rt.SetView(nil)
		return
	}
	var ns view.Namespaces
	switch {
	case c.Cgroup != "" && d.tracker != nil:
		v, err := d.tracker.NewView(c.Cgroup)
		if err != nil {
			d.log.Warn("the container's namespaces cannot be followed: its copies show pids as 0 and ids as 65534", "container", c.Name, "cgroup", c.Cgroup, "error", err)
			ns = procs.Unknown
			break
		}
		d.views.mu.Lock()
		if d.views.by == nil {
			d.views.by = map[*deliver.Container]*procs.View{}
		}
		d.views.by[t] = v
		d.views.mu.Unlock()
		ns = v
	default:
		// A contid (patched kernel), or no tracker: not translated yet.
		d.log.Warn("the container's copies keep the host's pids and ids: its namespaces are followed only by cgroup, with the process-events tracker", "container", c.Name)
	}
	rt.SetView(ns)
}

func (d *Daemon) detachView(t *deliver.Container) {
	d.views.mu.Lock()
	v := d.views.by[t]
	delete(d.views.by, t)
	d.views.mu.Unlock()
	if v != nil {
		v.Close()
	}
}
