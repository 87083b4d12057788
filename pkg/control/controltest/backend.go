// Package controltest provides a control.Backend kept in memory on top of
// the real registry, for tests of the control API's clients and servers.
// It routes and delivers nothing: the figures are whatever a test sets.
package controltest

import (
	"context"
	"fmt"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// Backend is an in-memory control.Backend. The zero value is not usable:
// call New.
type Backend struct {
	mu      sync.Mutex // guards every field below
	tree    *registry.Tree
	figures map[string]control.ContainerInfo
	kernel  control.KernelStatus
	hostLog control.HostLogStatus
	router  control.RouterStatus
	tracker *control.TrackerStatus
	export  *control.ExportStatus
	consume *control.ConsumeStatus
	calls   []string
	regs    []*registry.Container
}

// New returns a Backend holding the containers cs (validated as a whole).
func New(cs ...*registry.Container) (*Backend, error) {
	t, err := registry.Build(cs)
	if err != nil {
		return nil, err
	}
	return &Backend{tree: t, figures: map[string]control.ContainerInfo{},
		kernel:  control.KernelStatus{Enabled: 1, Attribution: control.AttributionCgroup},
		hostLog: control.HostLogStatus{Path: "/var/log/audit/audit.log"}}, nil
}

// SetFigures sets the queue and delivery figures reported for the
// container called name (the fields Describe does not fill).
func (b *Backend) SetFigures(name string, f control.ContainerInfo) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.figures[name] = f
}

// SetKernel and SetHostLog set what Status reports.
func (b *Backend) SetKernel(k control.KernelStatus) { b.mu.Lock(); b.kernel = k; b.mu.Unlock() }

// SetHostLog sets the host log figures Status reports.
func (b *Backend) SetHostLog(h control.HostLogStatus) { b.mu.Lock(); b.hostLog = h; b.mu.Unlock() }

// SetRouter sets the router figures Status reports.
func (b *Backend) SetRouter(r control.RouterStatus) { b.mu.Lock(); b.router = r; b.mu.Unlock() }

// SetTracker sets the process-events tracker figures Status reports (nil:
// none).
func (b *Backend) SetTracker(t *control.TrackerStatus) { b.mu.Lock(); b.tracker = t; b.mu.Unlock() }

// SetJetStream sets the JetStream export and consumer Status reports (nil:
// none).
func (b *Backend) SetJetStream(e *control.ExportStatus, c *control.ConsumeStatus) {
	b.mu.Lock()
	b.export, b.consume = e, c
	b.mu.Unlock()
}

// Calls returns the changes made so far, like "register web".
func (b *Backend) Calls() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.calls...)
}

// Registrations returns every container registered so far, in order,
// unregistered ones included.
func (b *Backend) Registrations() []*registry.Container {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*registry.Container(nil), b.regs...)
}

// Tree implements control.Backend.
func (b *Backend) Tree() *registry.Tree {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tree
}

// Register implements control.Backend.
func (b *Backend) Register(ctx context.Context, c *registry.Container, o control.RegisterOptions) (control.ContainerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o.Guard != nil {
		if err := o.Guard(b.tree); err != nil {
			return control.ContainerInfo{}, err
		}
	}
	if b.tree.ByName(c.Name) != nil && !o.Replace {
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w (give replace to replace it)", c.Name, control.ErrExists)
	}
	t, err := b.tree.With(c)
	if err != nil {
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w: %w", c.Name, control.ErrInvalid, err)
	}
	b.tree = t
	b.calls = append(b.calls, "register "+c.Name)
	b.regs = append(b.regs, c)
	return b.info(c), nil
}

// Unregister implements control.Backend. A drain always finds the queue
// delivered; a spool reports the queued copies as spooled.
func (b *Backend) Unregister(ctx context.Context, name string, o control.UnregisterOptions) (control.UnregisterResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o.Guard != nil {
		if err := o.Guard(b.tree); err != nil {
			return control.UnregisterResult{}, err
		}
	}
	c := b.tree.ByName(name)
	if c == nil {
		return control.UnregisterResult{}, fmt.Errorf("unregistering: %w: no container %q", control.ErrNotFound, name)
	}
	if o.Owner != "" && c.Owner != o.Owner {
		return control.UnregisterResult{}, fmt.Errorf("unregistering %q: %w: it was not registered by %s", name, control.ErrConflict, o.Owner)
	}
	t, err := b.tree.Without(name)
	if err != nil {
		return control.UnregisterResult{}, fmt.Errorf("unregistering: %w: %w", control.ErrConflict, err)
	}
	b.tree = t
	f := b.figures[name]
	delete(b.figures, name)
	b.calls = append(b.calls, fmt.Sprintf("unregister %s %s %s", name, o.Mode, o.Timeout))
	res := control.UnregisterResult{Name: name, Mode: o.Mode}
	if o.Mode == control.ModeDrain {
		res.Drained, res.Delivered = true, f.Queued
	} else {
		res.Spooled = f.Queued
	}
	return res, nil
}

// PushRules implements control.Backend.
func (b *Backend) PushRules(ctx context.Context, name string, u control.RulesUpdate) (control.ContainerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if o := u.Guard; o != nil {
		if err := o(b.tree); err != nil {
			return control.ContainerInfo{}, err
		}
	}
	c := b.tree.ByName(name)
	if c == nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules: %w: no container %q", control.ErrNotFound, name)
	}
	nc := *c
	nc.Rules = u.Rules
	t, err := b.tree.With(&nc)
	if err != nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules: %w", err)
	}
	b.tree = t
	b.calls = append(b.calls, "rules-push "+name)
	return b.info(&nc), nil
}

// Containers implements control.Backend.
func (b *Backend) Containers(ctx context.Context) ([]control.ContainerInfo, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.list(), nil
}

// Status implements control.Backend.
func (b *Backend) Status(ctx context.Context) (control.Status, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	k, h, r := b.kernel, b.hostLog, b.router
	st := control.Status{PID: 4242, Kernel: &k, HostLog: &h, Router: &r, Containers: b.list()}
	if b.tracker != nil {
		t := *b.tracker
		st.Tracker = &t
	}
	if b.export != nil {
		e := *b.export
		st.Export = &e
	}
	if b.consume != nil {
		c := *b.consume
		st.Consume = &c
	}
	return st, nil
}

func (b *Backend) list() []control.ContainerInfo {
	out := []control.ContainerInfo{}
	for _, c := range b.tree.Containers() {
		out = append(out, b.info(c))
	}
	return out
}

func (b *Backend) info(c *registry.Container) control.ContainerInfo {
	d := control.Describe(c)
	f := b.figures[c.Name]
	f.Name, f.ID, f.Cgroup, f.Parent, f.Target, f.Socket, f.Owner, f.View, f.Rules = d.Name, d.ID, d.Cgroup, d.Parent, d.Target, d.Socket, d.Owner, d.View, d.Rules
	return f
}
