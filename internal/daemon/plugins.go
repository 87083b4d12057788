package daemon

import (
	"fmt"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/plugin"
)

// lineFunc formats a record's line as the host log writes it.
type lineFunc = func(dst []byte, typ uint16, data []byte) []byte

// pluginWarnings are the plugins' files that plugin_dir holds and that
// are refused, as warnings: the daemon runs without them.
func pluginWarnings(cfg *config.Config) []string {
	if cfg.PluginDir == "" || cfg.Listen != nil {
		return nil
	}
	_, errs := plugin.LoadDir(cfg.PluginDir)
	var out []string
	for _, err := range errs {
		out = append(out, fmt.Sprintf("plugin refused, not run: %v", err))
	}
	return out
}

// startPlugins starts the active plugins of plugin_dir. Refused files
// were named by Load's warnings.
func (d *Daemon) startPlugins() {
	cfg := d.cfg()
	d.setPluginLine(cfg)
	var confs []*plugin.Conf
	if cfg.PluginDir != "" {
		confs, _ = plugin.LoadDir(cfg.PluginDir)
	}
	d.plugins = plugin.Start(confs, plugin.Options{
		QDepth: cfg.QDepth, Overflow: cfg.OverflowAction, MaxRestarts: cfg.MaxRestarts,
		Line: func(dst []byte, typ uint16, data []byte) []byte { return (*d.pluginLine.Load())(dst, typ, data) },
		Log:  d.log.Named("plugin"),
		Halt: func(reason string) {
			d.log.Error("stopping the daemon", "reason", reason)
			d.halt()
		},
	})
	d.pluginFeed.Store(d.plugins)
	if len(confs) > 0 {
		d.log.Info("plugins started", "plugins", len(confs), "plugin_dir", cfg.PluginDir, "q_depth", cfg.QDepth,
			"overflow_action", cfg.OverflowAction.String(), "max_restarts", cfg.MaxRestarts)
	}
}

func (d *Daemon) setPluginLine(cfg *config.Config) {
	f := hostlog.LineFunc(nodeName(cfg), cfg.Log.Format)
	d.pluginLine.Store(&f)
}

// reloadPlugins re-reads plugin_dir on SIGHUP, as auditd does.
func (d *Daemon) reloadPlugins(cfg *config.Config) {
	if d.plugins == nil {
		return
	}
	d.setPluginLine(cfg)
	var confs []*plugin.Conf
	if cfg.PluginDir != "" {
		confs, _ = plugin.LoadDir(cfg.PluginDir)
	}
	d.plugins.Reload(confs, cfg.OverflowAction, cfg.MaxRestarts)
}

// pluginStatus is the plugins' part of the control API's status.
func (d *Daemon) pluginStatus() []control.PluginStatus {
	var out []control.PluginStatus
	for _, s := range d.plugins.Stats() {
		out = append(out, control.PluginStatus{Name: s.Name, Path: s.Path, State: s.State, PID: s.PID,
			Queued: s.Queued, QDepth: s.QDepth, Sent: s.Sent, Dropped: s.Dropped, Restarts: s.Restarts, LastError: s.LastError})
	}
	return out
}
