package hostlog

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Rotate rotates the log now, as auditd does on SIGUSR1: a DAEMON_ROTATE
// record closes the current file, which becomes PATH.1 (older files move up,
// the oldest beyond num_logs is removed), and a new empty file is opened.
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rotateLocked(false)
}

func (w *Writer) rotateLocked(keepAll bool) error {
	if w.opt.Discard {
		return nil
	}
	if w.f == nil {
		return errors.New("rotating log: log is closed")
	}
	if w.rotating {
		return nil
	}
	w.rotating = true
	defer func() { w.rotating = false }()
	w.daemonLocked(record.TypeDaemonRotate, record.DaemonText("rotate-logs", "", true))
	if err := w.flushLocked(); err != nil {
		return fmt.Errorf("rotating log: %w", err)
	}
	if err := errors.Join(w.f.Sync(), w.f.Close()); err != nil {
		w.opt.Logger.Warn("closing the log before rotating", "error", err)
	}
	w.f = nil
	w.reresolve()
	if err := w.shift(keepAll); err != nil {
		w.opt.Logger.Error("rotating log", "error", err)
	}
	w.stats.Rotations++
	if err := w.open(); err != nil {
		w.opt.Logger.Error("reopening log after rotation", "error", err)
		w.run(w.opt.DiskErrorAction, "disk error")
		return err
	}
	return nil
}

// shift renames PATH.i to PATH.i+1 from the oldest down, then PATH to
// PATH.1. With keepAll (keep_logs) nothing is removed. All of it happens in
// the log's directory held open (logDir), never by path: a symlink put in
// place of a rotated copy is renamed or removed itself, never followed.
func (w *Writer) shift(keepAll bool) error {
	d, p, err := w.logDir()
	if err != nil {
		return err
	}
	exists := func(name string) bool {
		_, err := d.Lstat(name)
		return err == nil
	}
	last := w.opt.NumLogs - 1
	if keepAll {
		last = 1
		for exists(p + "." + strconv.Itoa(last)) {
			last++
		}
	} else if last < 1 {
		// num_logs 0 or 1: nothing is kept, the file starts again.
		return d.Remove(p)
	} else {
		d.Remove(p + "." + strconv.Itoa(last))
	}
	for i := last - 1; i >= 1; i-- {
		from := p + "." + strconv.Itoa(i)
		if err := d.Rename(from, p+"."+strconv.Itoa(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return d.Rename(p, p+".1")
}

// sizeAction applies max_log_file_action once the file reaches max_log_file.
func (w *Writer) sizeAction() {
	act := w.opt.MaxLogFileAction
	switch act.Kind {
	case ActionRotate:
		w.rotateLocked(false)
	case ActionKeepLogs:
		w.rotateLocked(true)
	case ActionIgnore:
	default:
		if w.size-w.opt.MaxLogFile < batchSize { // only on crossing
			w.run(act, "max_log_file reached")
		}
	}
}

// daemonLocked appends one of the daemon's own records.
func (w *Writer) daemonLocked(typ uint16, text string) {
	w.serial++
	now := time.Now()
	data := record.AppendPayload(nil, now, w.serial, text)
	w.writeLocked(typ, data)
	if w.opt.OnDaemon != nil {
		w.opt.OnDaemon(typ, data)
	}
}

// Daemon writes one of the daemon's own records (DAEMON_START, ...), with
// the current time and the writer's own serial counter.
func (w *Writer) Daemon(typ uint16, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.daemonLocked(typ, text)
	return w.flushLocked()
}
