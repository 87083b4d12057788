package hostlog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

// logDir returns the directory of the log, held open, and the log's name in
// it. Every open, rename and unlink of the log and its rotated copies goes
// through that descriptor, never through the path:
//
//   - with Options.Beneath, the directory is reached from Beneath (opened
//     with no symlink anywhere on its path) with no symlink followed, and
//     made if missing; it is held for the Writer's life;
//   - with Options.HoldDir, it is opened by path once (symlinks on the way
//     followed: the host admin wrote it) and held for the Writer's life;
//   - otherwise (the host's own log) it is opened by path again at every
//     rotation (see reresolve), as auditd does, so a log directory the
//     admin replaced is used; one rotation uses one descriptor.
//
// The directory itself is never a symlink.
func (w *Writer) logDir() (*beneath.Dir, string, error) {
	if w.dir != nil {
		return w.dir, w.base, nil
	}
	d, base, err := openLogDir(w.opt)
	if err != nil {
		return nil, "", err
	}
	w.dir, w.base = d, base
	return d, base, nil
}

func openLogDir(opt Options) (*beneath.Dir, string, error) {
	if opt.Beneath == "" {
		dir, base := filepath.Dir(opt.Path), filepath.Base(opt.Path)
		if err := ensureDir(dir); err != nil {
			return nil, "", err
		}
		d, err := beneath.Open(dir)
		if err != nil {
			return nil, "", fmt.Errorf("opening log directory: %w", err)
		}
		return d, base, nil
	}
	rel, err := beneath.Rel("log", opt.Beneath, opt.Path)
	if err != nil {
		return nil, "", fmt.Errorf("opening log: %w", err)
	}
	area, err := beneath.OpenStrict(opt.Beneath, false, 0)
	if err != nil {
		return nil, "", fmt.Errorf("opening log %s: the directory it is confined to: %w", opt.Path, err)
	}
	defer area.Close()
	d, err := area.MkdirAll(filepath.Dir(rel), 0o700)
	if err != nil {
		return nil, "", fmt.Errorf("opening log %s beneath %s: %w", opt.Path, opt.Beneath, err)
	}
	return d, filepath.Base(rel), nil
}

// ensureDir creates dir with mode 0700 if it is missing and refuses a symlink.
func ensureDir(dir string) error {
	st, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating log directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking log directory: %w", err)
	}
	if st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("log directory %s is a symlink, refusing to follow it", dir)
	}
	if !st.IsDir() {
		return fmt.Errorf("log directory %s is not a directory", dir)
	}
	return nil
}

// reresolve lets go of the host log's directory before a rotation, so
// that it is looked up by path again; a held directory is kept.
func (w *Writer) reresolve() {
	if w.opt.Beneath == "" && !w.opt.HoldDir {
		w.closeDir()
	}
}

// closeDir lets go of the log's directory (Close, Reconfigure).
func (w *Writer) closeDir() {
	if w.dir != nil {
		w.dir.Close()
		w.dir = nil
	}
}
