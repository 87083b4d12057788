package daemon

import (
	"math"
	"slices"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/procs"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// views are the running containers' procs.Views (view: container, with
// the process-events tracker: by cgroup on a stock kernel, by contid on a
// patched one), keyed by the running
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
// View of its cgroup (stock kernel) or of its contid (patched kernel) for
// view: container.
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
		d.keepView(t, v)
		ns = v
	case c.HasID() && d.idTracker != nil:
		id := c.ID
		v, err := d.idTracker.NewContIDView(id, func(other uint64) bool {
			ch, ok := d.chains.chain(other)
			return ok && slices.Contains(ch[1:], id)
		})
		if err != nil {
			d.log.Warn("the container's namespaces cannot be followed: its copies show pids as 0 and ids as 65534", "container", c.Name, "contid", id, "error", err)
			ns = procs.Unknown
			break
		}
		d.keepView(t, v)
		ns = v
	default:
		// No process-events tracker (it could not start): not translated.
		d.log.Warn("the container's copies keep the host's pids and ids: its namespaces are followed only with the process-events tracker", "container", c.Name)
	}
	rt.SetView(ns)
}

// keepView keeps t's View until detachView closes it.
func (d *Daemon) keepView(t *deliver.Container, v *procs.View) {
	d.views.mu.Lock()
	if d.views.by == nil {
		d.views.by = map[*deliver.Container]*procs.View{}
	}
	d.views.by[t] = v
	d.views.mu.Unlock()
}

// noteSet gives the contid tracker a successful op=set record of the
// kernel: the task it names and its new contid, at the record's stamp.
func (d *Daemon) noteSet(data []byte) {
	var r record.Record
	if record.Parse(&r, record.TypeContainerOp, data) != nil {
		return
	}
	op, err := record.ParseContainerOp(&r, nil)
	if err != nil || !op.Result || op.Op != "set" || len(op.ContID) == 0 || op.OPID == 0 || op.OPID > math.MaxUint32 {
		return
	}
	at := int64(r.Sec)*1e9 + int64(r.Msec)*1e6
	d.idTracker.SetContID(uint32(op.OPID), op.ContID[0], at)
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
