package daemon

import "github.com/auditd-ns/auditd-ns/internal/sdnotify"

// notify tells systemd the daemon's state (a unit of Type=notify): ready
// once it is the registered audit daemon with its rules loaded and its
// containers and control socket up, stopping when it begins to stop.
func (d *Daemon) notify(state string) {
	if _, err := sdnotify.Notify(state); err != nil {
		d.log.Warn("could not tell systemd the daemon's state", "state", state, "error", err)
	}
}
