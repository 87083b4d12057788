package beneath

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// resolve is how every name is looked up beneath a Dir.
const resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// ErrSymlink is wrapped by errors for a name that has a symlink on its way:
// they are refused, never followed.
var ErrSymlink = errors.New("a symlink is on the way, refusing to follow it")

// ErrOutside is wrapped by errors for a name that would lead outside its
// directory.
var ErrOutside = errors.New("it leads outside the directory")

// Dir is a directory held open by a descriptor. Its methods take names
// relative to it and never leave it. The zero Dir is not usable; a Dir is
// safe for use by several goroutines.
type Dir struct {
	f    *os.File
	path string // what it was opened as, for messages only
}

// Open opens the directory path by path, following symlinks on the way
// except in its last element: for directories a host admin named. The
// directory must exist.
func Open(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "opening directory", Path: path, Err: explain(err)}
	}
	return &Dir{f: os.NewFile(uintptr(fd), path), path: path}, nil
}

// OpenStrict opens the directory path, a clean absolute path (CheckAbs),
// refusing any symlink anywhere on it: for directories that a container
// could have had a hand in. With create, missing directories are made with
// mode perm, each beneath the one before.
func OpenStrict(path string, create bool, perm uint32) (*Dir, error) {
	if err := CheckAbs("directory", path); err != nil {
		return nil, err
	}
	root, err := Open("/")
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rel := path[1:]
	if create {
		d, err := root.MkdirAll(rel, perm)
		if err != nil {
			return nil, err
		}
		d.path = path
		return d, nil
	}
	d, err := root.Dir(rel)
	if err != nil {
		return nil, err
	}
	d.path = path
	return d, nil
}

// Path is the directory's path as it was opened (for messages: the
// directory may have moved since).
func (d *Dir) Path() string { return d.path }

// Fd is the directory's descriptor, valid until Close.
func (d *Dir) Fd() int { return int(d.f.Fd()) }

// ProcPath names rel through /proc/self/fd, for calls that take only a
// path (bind(2) of a unix socket): the kernel resolves it from the
// descriptor. rel must be one name.
func (d *Dir) ProcPath(rel string) string {
	return "/proc/self/fd/" + strconv.Itoa(d.Fd()) + "/" + rel
}

// Close closes the descriptor.
func (d *Dir) Close() error { return d.f.Close() }

// Sync flushes the directory's entries to disk.
func (d *Dir) Sync() error { return d.f.Sync() }

// OpenFile opens rel beneath d with flag (os.O_* or unix.O_*; O_CLOEXEC is
// added) and, when it creates the file, mode perm.
func (d *Dir) OpenFile(rel string, flag int, perm uint32) (*os.File, error) {
	fd, err := d.openat2(rel, flag, perm)
	if err != nil {
		return nil, &os.PathError{Op: "opening", Path: d.name(rel), Err: err}
	}
	return os.NewFile(uintptr(fd), d.name(rel)), nil
}

// Dir opens the directory rel beneath d.
func (d *Dir) Dir(rel string) (*Dir, error) {
	if rel == "" || rel == "." {
		return d.dup()
	}
	fd, err := d.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "opening directory", Path: d.name(rel), Err: err}
	}
	return &Dir{f: os.NewFile(uintptr(fd), d.name(rel)), path: d.name(rel)}, nil
}

// MkdirAll opens the directory rel beneath d, making each missing element
// with mode perm.
func (d *Dir) MkdirAll(rel string, perm uint32) (*Dir, error) {
	cur, err := d.dup()
	if err != nil {
		return nil, err
	}
	if rel == "" || rel == "." {
		return cur, nil
	}
	for _, e := range strings.Split(rel, "/") {
		if e == "" || e == "." || e == ".." {
			cur.Close()
			return nil, &os.PathError{Op: "making directory", Path: d.name(rel), Err: ErrOutside}
		}
		err := unix.Mkdirat(cur.Fd(), e, perm)
		if err != nil && err != unix.EEXIST {
			cur.Close()
			return nil, &os.PathError{Op: "making directory", Path: cur.name(e), Err: explain(err)}
		}
		next, err := cur.Dir(e)
		cur.Close()
		if err != nil {
			return nil, err
		}
		cur = next
	}
	cur.path = d.name(rel)
	return cur, nil
}

// Rename renames the entry from to to, both single names in d. An entry
// at to is replaced. A symlink is renamed itself, never followed.
func (d *Dir) Rename(from, to string) error {
	if err := one(from); err != nil {
		return &os.LinkError{Op: "renaming", Old: d.name(from), New: d.name(to), Err: err}
	}
	if err := one(to); err != nil {
		return &os.LinkError{Op: "renaming", Old: d.name(from), New: d.name(to), Err: err}
	}
	if err := unix.Renameat(d.Fd(), from, d.Fd(), to); err != nil {
		return &os.LinkError{Op: "renaming", Old: d.name(from), New: d.name(to), Err: err}
	}
	return nil
}

// RenameTo moves the entry from in d to the entry to in dst.
func (d *Dir) RenameTo(from string, dst *Dir, to string) error {
	if err := errors.Join(one(from), one(to)); err != nil {
		return &os.LinkError{Op: "renaming", Old: d.name(from), New: dst.name(to), Err: err}
	}
	if err := unix.Renameat(d.Fd(), from, dst.Fd(), to); err != nil {
		return &os.LinkError{Op: "renaming", Old: d.name(from), New: dst.name(to), Err: err}
	}
	return nil
}

// Remove removes the entry name in d (a symlink itself, never its
// target); it is not a directory.
func (d *Dir) Remove(name string) error { return d.unlink(name, 0) }

// RemoveDir removes the empty directory name in d.
func (d *Dir) RemoveDir(name string) error { return d.unlink(name, unix.AT_REMOVEDIR) }

func (d *Dir) unlink(name string, flags int) error {
	err := one(name)
	if err == nil {
		err = unix.Unlinkat(d.Fd(), name, flags)
	}
	if err != nil {
		return &os.PathError{Op: "removing", Path: d.name(name), Err: err}
	}
	return nil
}

// Lstat describes the entry name in d without following it.
func (d *Dir) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := one(name)
	if err == nil {
		err = unix.Fstatat(d.Fd(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return st, &os.PathError{Op: "checking", Path: d.name(name), Err: err}
	}
	return st, nil
}

// Names lists the entries of d.
func (d *Dir) Names() ([]string, error) {
	f, err := d.OpenFile(".", unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

func (d *Dir) dup() (*Dir, error) {
	fd, err := unix.FcntlInt(d.f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "duplicating", Path: d.path, Err: err}
	}
	return &Dir{f: os.NewFile(uintptr(fd), d.path), path: d.path}, nil
}

func (d *Dir) openat2(rel string, flag int, perm uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC), Resolve: resolve}
	if flag&(unix.O_CREAT|unix.O_TMPFILE) != 0 {
		how.Mode = uint64(perm)
	}
	for range 16 {
		fd, err := unix.Openat2(d.Fd(), rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue // a rename raced the lookup: try again
		}
		if err != nil {
			return -1, explain(err)
		}
		return fd, nil
	}
	return -1, unix.EAGAIN
}

func (d *Dir) name(rel string) string {
	if rel == "." || rel == "" {
		return d.path
	}
	return strings.TrimSuffix(d.path, "/") + "/" + rel
}

// one checks that name is a single element of a directory.
func one(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q is not a single name: %w", name, ErrOutside)
	}
	return nil
}

// explain turns the errors of a refused lookup into ones that say why.
func explain(err error) error {
	switch err {
	case unix.ELOOP:
		return fmt.Errorf("%w: %w", ErrSymlink, err)
	case unix.EXDEV:
		return fmt.Errorf("%w: %w", ErrOutside, err)
	}
	return err
}
