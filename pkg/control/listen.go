package control

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

// Listen creates the unix socket path with mode 0600 and listens on it.
// A stale socket file (nobody listening) is removed; a live one, or a
// file that is not a socket, is refused. The parent directory is created
// with mode 0700 if missing, then opened once by path (it must not be a
// symlink itself); everything after goes through its descriptor: the
// socket is bound in a private temporary directory made in it and renamed
// into place, so it is never reachable with wider permissions. Closing the
// listener removes path if it is still its socket. For the host admin's
// socket; see ListenStrict for a container's.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	d, err := beneath.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return listenIn(d, filepath.Base(path), path)
}

// ListenStrict is Listen for a socket that a container's registration
// names (its scoped socket): path must be a clean absolute path, and its
// directory is opened, and made with mode 0700 where missing, with no
// symlink followed anywhere on its path (beneath.OpenStrict), so that
// whoever can write in a directory on the way cannot send the socket, or
// the removal of a stale one, elsewhere.
func ListenStrict(path string) (net.Listener, error) {
	if err := beneath.CheckAbs("socket", path); err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	d, err := beneath.OpenStrict(filepath.Dir(path), true, 0o700)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return listenIn(d, filepath.Base(path), path)
}

// listenIn listens on the socket name in d, taking d over.
func listenIn(d *beneath.Dir, name, path string) (net.Listener, error) {
	ln, st, err := bindIn(d, name)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	return &listener{UnixListener: ln, dir: d, name: name, path: path, dev: st.Dev, ino: st.Ino}, nil
}

func bindIn(d *beneath.Dir, name string) (*net.UnixListener, unix.Stat_t, error) {
	var st unix.Stat_t
	if err := clearStale(d, name); err != nil {
		return nil, st, err
	}
	tmp, td, err := tempDir(d)
	if err != nil {
		return nil, st, err
	}
	defer func() {
		td.Remove("s")
		td.Close()
		d.RemoveDir(tmp)
	}()
	// bind(2) takes a path only: name the private directory through its
	// descriptor, so nothing on the way is looked up again.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: td.ProcPath("s"), Net: "unix"})
	if err != nil {
		return nil, st, err
	}
	ln.SetUnlinkOnClose(false)
	err = unix.Fchmodat(td.Fd(), "s", 0o600, 0)
	if err == nil {
		err = td.RenameTo("s", d, name)
	}
	if err == nil {
		st, err = d.Lstat(name)
	}
	if err != nil {
		ln.Close()
		return nil, st, err
	}
	return ln, st, nil
}

// tempDir makes a private directory in d.
func tempDir(d *beneath.Dir) (string, *beneath.Dir, error) {
	for range 100 {
		name := fmt.Sprintf(".ctl-%d-%x", os.Getpid(), rand.Uint64())
		err := unix.Mkdirat(d.Fd(), name, 0o700)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", nil, &os.PathError{Op: "making a private directory", Path: d.Path(), Err: err}
		}
		td, err := d.Dir(name)
		if err != nil {
			d.RemoveDir(name)
			return "", nil, err
		}
		return name, td, nil
	}
	return "", nil, fmt.Errorf("making a private directory in %s: every name tried exists", d.Path())
}

// clearStale removes a socket file nobody listens on.
func clearStale(d *beneath.Dir, name string) error {
	st, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s/%s exists and is not a socket: refusing to replace it", d.Path(), name)
	}
	if c, err := net.DialTimeout("unix", d.ProcPath(name), time.Second); err == nil {
		c.Close()
		return fmt.Errorf("another process is listening on %s/%s", d.Path(), name)
	}
	return d.Remove(name)
}

// listener removes its socket file on Close, if the file is still its own,
// through the directory it holds.
type listener struct {
	*net.UnixListener
	dir      *beneath.Dir
	name     string
	path     string
	dev, ino uint64
	once     sync.Once
}

func (l *listener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if st, serr := l.dir.Lstat(l.name); serr == nil && st.Dev == l.dev && st.Ino == l.ino {
			l.dir.Remove(l.name)
		}
		l.dir.Close()
	})
	return err
}

// Addr is the socket's path (the listener itself was bound through its
// directory's descriptor).
func (l *listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }
