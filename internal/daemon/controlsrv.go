package daemon

import (
	"context"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/control"
)

// scoped holds the running scoped control sockets, by container name.
type scoped struct {
	mu   sync.Mutex // guards stop
	stop map[string]context.CancelFunc
}

// startControl serves the control socket (and the metrics endpoint when
// configured) until the daemon stops.
func (d *Daemon) startControl() {
	ctx, cancel := context.WithCancel(context.Background())
	d.controlStop = cancel
	d.scoped.stop = map[string]context.CancelFunc{}
	if d.cfg().ControlSocket != "" {
		ln, err := control.Listen(d.cfg().ControlSocket)
		if err != nil {
			d.log.Error("the control socket is not available", "path", d.cfg().ControlSocket, "error", err)
		} else {
			srv := &control.Server{Backend: backend{d}, Logger: d.log.Named("control")}
			go srv.Run(ctx, ln)
		}
	}
	if d.cfg().MetricsAddress != "" {
		go func() {
			if err := control.ServeMetrics(ctx, d.cfg().MetricsAddress, backend{d}, d.log.Named("metrics")); err != nil {
				d.log.Error("the metrics endpoint stopped", "error", err)
			}
		}()
	}
	d.conts.mu.Lock()
	for _, t := range d.conts.live {
		d.startScoped(t)
	}
	d.conts.mu.Unlock()
}

// startScoped serves a container's scoped control socket, if it asks for
// one (made when the container started): a nested orchestrator there
// manages only the containers inside it.
func (d *Daemon) startScoped(t *tenant) {
	if t.ln == nil || d.scoped.stop == nil {
		return
	}
	ln := t.ln
	ctx, cancel := context.WithCancel(context.Background())
	d.scoped.mu.Lock()
	if old := d.scoped.stop[t.c.Name]; old != nil {
		old()
	}
	d.scoped.stop[t.c.Name] = cancel
	d.scoped.mu.Unlock()
	srv := &control.Server{Backend: backend{d}, Logger: d.log.Named("control." + t.c.Name), Scope: t.c.Name, Policy: d.scopePolicy}
	go srv.Run(ctx, ln)
}

func (d *Daemon) stopScoped(name string) {
	d.scoped.mu.Lock()
	defer d.scoped.mu.Unlock()
	if stop := d.scoped.stop[name]; stop != nil {
		stop()
		delete(d.scoped.stop, name)
	}
}

func (d *Daemon) stopControl() {
	if d.controlStop == nil {
		return
	}
	d.controlStop()
	d.scoped.mu.Lock()
	for _, stop := range d.scoped.stop {
		stop()
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
