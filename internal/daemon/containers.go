package daemon

import (
	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// newContainers wires the registered containers' lifecycle to the daemon:
// its router, its state directory, its host-log settings (the base of file
// targets), its kernel (nil without the container-ID patches) and the
// scoped control sockets.
func (d *Daemon) newContainers(store *registry.Store, kernel deliver.KernelRules) *deliver.Containers {
	return deliver.New(deliver.Options{
		Router: d.router,
		Store:  store,
		Kernel: kernel,
		Settings: func() deliver.Settings {
			cfg := d.cfg()
			return deliver.Settings{StateDir: cfg.StateDir, Log: cfg.Log}
		},
		Logger: d.log.Named("containers"),
		Attach: d.attach,
		Detach: d.detach,
	})
}
