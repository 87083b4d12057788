package daemon

import (
	"reflect"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// reload re-reads the config and the rules file (SIGHUP). A bad file is
// logged and changes nothing; the daemon keeps its running configuration.
func (d *Daemon) reload() {
	old := d.cfg()
	cfg, kf, err := Load(old.File)
	if err != nil {
		d.log.Error("reloading the config (SIGHUP): keeping the running configuration", "error", err)
		d.hlog.Daemon(record.TypeDaemonConfig, record.DaemonText("reconfigure", "state=no-change", false))
		return
	}
	for _, w := range cfg.Warnings {
		d.log.Warn(w)
	}
	if !reflect.DeepEqual(cfg.Log, old.Log) || cfg.NameFormat != old.NameFormat || cfg.Name != old.Name || cfg.WriteLogs != old.WriteLogs {
		d.hlog.Daemon(record.TypeDaemonConfig, record.DaemonText("reconfigure", "state=changed", true))
		if err := d.hlog.Reconfigure(d.logOptions(cfg)); err != nil {
			d.log.Error("reloading the config: opening the new log; keeping the old one", "error", err)
			return
		}
	}
	if d.kern == nil && !reflect.DeepEqual(cfg.Listen, old.Listen) {
		// Listener mode: the listening socket stays as it was started.
		d.log.Warn("reloading the config (SIGHUP): listen settings take effect at the next start")
		cfg.Listen = old.Listen
	}
	d.rules = kf
	d.conf.Store(cfg)
	d.reloadPlugins(cfg)
	problems := 0
	if d.kern != nil { // listener mode has no kernel to configure
		problems = d.applyKernel(cfg, kf)
	}
	d.log.Info("reloaded the config (SIGHUP)", "problems", problems)
}
