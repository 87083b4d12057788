package router

import (
	"sync/atomic"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// Pusher is the queue side the router writes copies into; *queue.Queue is
// one. PushAll queues each item (one record line) in order, copying it; it
// must not block.
type Pusher interface {
	PushAll(items [][]byte)
}

// Container is a registered container as the router sees it: its rules (which
// can be replaced while records flow) and its queue.
type Container struct {
	C     *registry.Container
	Queue Pusher
	rules atomic.Pointer[rules.Program]
	view  atomic.Pointer[nsView]        // nil: the host view
	ses   atomic.Pointer[view.Sessions] // made by the first SetView

	events   atomic.Uint64 // events copied to this container
	copies   atomic.Uint64 // records pushed
	filtered atomic.Uint64 // events its rules dropped
}

// NewContainer makes a container of c writing into q.
func NewContainer(c *registry.Container, q Pusher) *Container {
	t := &Container{C: c, Queue: q}
	t.rules.Store(c.Rules)
	return t
}

// SetRules replaces the container's rules atomically; the next event uses them.
func (t *Container) SetRules(p *rules.Program) { t.rules.Store(p) }

// Rules returns the rules in force.
func (t *Container) Rules() *rules.Program { return t.rules.Load() }

// nsView boxes a Namespaces for an atomic pointer.
type nsView struct{ ns view.Namespaces }

// SetView sets, atomically, the namespaces the container's copies are
// translated into (see pkg/view); the next event uses them. nil is the
// host view, the default: copies carry the ids as the kernel wrote them.
// The container's Sessions are kept across calls.
func (t *Container) SetView(ns view.Namespaces) {
	if ns == nil {
		t.view.Store(nil)
		return
	}
	if t.ses.Load() == nil {
		t.ses.CompareAndSwap(nil, view.NewSessions(0))
	}
	t.view.Store(&nsView{ns})
}

// View returns the namespaces copies are translated into, nil for the host
// view.
func (t *Container) View() view.Namespaces {
	if v := t.view.Load(); v != nil {
		return v.ns
	}
	return nil
}

// Sessions returns the audit sessions begun inside the container (the
// LOGIN records routed to it while its view was set), nil before the first
// SetView with namespaces.
func (t *Container) Sessions() *view.Sessions { return t.ses.Load() }

// ContainerStats counts what the router did for one container.
type ContainerStats struct {
	Events, Records, Filtered uint64
}

// Stats returns the container's counters.
func (t *Container) Stats() ContainerStats {
	return ContainerStats{Events: t.events.Load(), Records: t.copies.Load(), Filtered: t.filtered.Load()}
}

var _ Pusher = (*queue.Queue)(nil)
