package hostlog

import (
	"log/syslog"
	"os/exec"
	"syscall"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// run carries out an action. It is called with w.mu held.
func (w *Writer) run(a Action, why string) {
	switch a.Kind {
	case ActionIgnore:
	case ActionSyslog:
		w.syslog(why)
	case ActionRotate:
		w.rotateLocked(false)
	case ActionKeepLogs:
		w.rotateLocked(true)
	case ActionSuspend:
		if !w.suspended {
			w.syslog(why + ": suspending logging")
			w.suspended = true
		}
	case ActionExec:
		w.exec(a.Exec, why)
	case ActionHalt:
		if !w.halted {
			w.halted = true
			w.syslog(why + ": stopping the daemon")
			go w.opt.Halt(why)
		}
	}
}

func (w *Writer) syslog(msg string) {
	w.opt.Logger.Warn("audit log: "+msg, "path", w.opt.Path)
	if s, err := syslog.New(syslog.LOG_ALERT|syslog.LOG_DAEMON, "auditd-ns"); err == nil {
		s.Alert("audit log " + w.opt.Path + ": " + msg)
		s.Close()
	}
}

// exec starts the admin's script without waiting for it, as auditd does.
func (w *Writer) exec(path, why string) {
	cmd := exec.Command(path)
	if err := cmd.Start(); err != nil {
		w.opt.Logger.Error("running action script", "script", path, "why", why, "error", err)
		return
	}
	w.opt.Logger.Warn("ran action script", "script", path, "why", why)
	go cmd.Wait()
}

// Resume restarts logging after a suspend action, as auditd's SIGUSR2.
func (w *Writer) Resume() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.suspended {
		return
	}
	w.suspended = false
	w.spaceLevel = 0
	w.daemonLocked(record.TypeDaemonResume, record.DaemonText("resume", "", true))
}

// checkSpace compares free space with space_left and admin_space_left, at
// most once a second, and runs the action when a threshold is crossed.
func (w *Writer) checkSpace() {
	if w.opt.SpaceLeft == (Space{}) && w.opt.AdminSpaceLeft == (Space{}) {
		return
	}
	now := time.Now()
	if now.Sub(w.lastCheck) < time.Second {
		return
	}
	w.lastCheck = now
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(w.f.Fd()), &st); err != nil {
		return
	}
	free := st.Bavail * uint64(st.Bsize)
	total := st.Blocks * uint64(st.Bsize)
	level := 0
	switch {
	case below(free, total, w.opt.AdminSpaceLeft):
		level = 2
	case below(free, total, w.opt.SpaceLeft):
		level = 1
	}
	if level <= w.spaceLevel {
		if level < w.spaceLevel {
			w.spaceLevel = level
		}
		return
	}
	w.spaceLevel = level
	if level == 2 {
		w.run(w.opt.AdminSpaceLeftAction, "admin_space_left reached")
	} else {
		w.run(w.opt.SpaceLeftAction, "space_left reached")
	}
}

func below(free, total uint64, s Space) bool {
	if s.Percent > 0 {
		return float64(free) < float64(total)*s.Percent/100
	}
	return s.Bytes > 0 && free < s.Bytes
}
