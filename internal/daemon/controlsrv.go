package daemon

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/deliver"
)

// scoped holds the running scoped control sockets, by container name.
type scoped struct {
	mu     sync.Mutex // guards byName
	byName map[string]scopedSocket
}

type scopedSocket struct {
	ln   net.Listener
	stop context.CancelFunc
}

// startControl serves the control socket (and the metrics endpoint when
// configured) as services of the daemon, until stopControl.
func (d *Daemon) startControl() {
	ctx, cancel := context.WithCancel(d.life)
	d.controlStop = cancel
	if path := d.cfg().ControlSocket; path != "" {
		ln, err := control.Listen(path)
		if err != nil {
			d.log.Error("the control socket is not available", "path", path, "error", err)
		} else {
			srv := &control.Server{Backend: backend{d}, Logger: d.log.Named("control")}
			d.serve("control socket", func() error { return srv.Run(ctx, ln) })
		}
	}
	if addr := d.cfg().MetricsAddress; addr != "" {
		d.serve("metrics endpoint", func() error {
			return control.ServeMetrics(ctx, addr, backend{d}, d.log.Named("metrics"))
		})
	}
}

// attachScoped makes and serves a container's scoped control socket, if it
// asks for one: a nested orchestrator there manages only the containers
// inside it. It runs as the container starts, so that a socket that cannot
// be made refuses the registration.
func (d *Daemon) attachScoped(t *deliver.Container) error {
	c := t.Config()
	if c.Socket == "" {
		return nil
	}
	ln, err := control.ListenStrict(c.Socket)
	if err != nil {
		return fmt.Errorf("the scoped control socket of %q: %w", c.Name, err)
	}
	ctx, cancel := context.WithCancel(d.life)
	d.scoped.mu.Lock()
	if d.scoped.byName == nil {
		d.scoped.byName = map[string]scopedSocket{}
	}
	d.scoped.byName[c.Name] = scopedSocket{ln: ln, stop: cancel}
	d.scoped.mu.Unlock()
	srv := &control.Server{Backend: backend{d}, Logger: d.log.Named("control." + c.Name), Scope: c.Name, Policy: d.scopePolicy}
	d.serve("scoped control socket "+c.Name, func() error { return srv.Run(ctx, ln) })
	return nil
}

// detachScoped closes a container's scoped control socket (removing its
// file) at once, so that a replacement can make it anew, and stops its
// server; requests in progress there finish.
func (d *Daemon) detachScoped(t *deliver.Container) {
	d.scoped.mu.Lock()
	defer d.scoped.mu.Unlock()
	name := t.Config().Name
	if s, ok := d.scoped.byName[name]; ok {
		s.stop() // first: the server then takes the closed socket as its end
		s.ln.Close()
		delete(d.scoped.byName, name)
	}
}

// stopControl stops serving the control socket, the metrics endpoint and
// every scoped socket.
func (d *Daemon) stopControl() {
	if d.controlStop != nil {
		d.controlStop()
	}
	d.scoped.mu.Lock()
	for name, s := range d.scoped.byName {
		s.stop() // first: the server then takes the closed socket as its end
		s.ln.Close()
		delete(d.scoped.byName, name)
	}
	d.scoped.mu.Unlock()
}

// scopePolicy is the host admin's policy for scoped sockets, from the
// running config, read at each request.
func (d *Daemon) scopePolicy() *control.ScopePolicy {
	sc := d.cfg().Scoped
	return &control.ScopePolicy{RemoteAllow: sc.RemoteAllow, RemoteHostNetNS: sc.RemoteHostNetNS, Quota: sc.Quota,
		Chains: chains{book: &d.chains, proc: "/proc"}}
}
