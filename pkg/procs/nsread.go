package procs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxPidLevel is the deepest pid namespace nesting the kernel allows
// (MAX_PID_NS_LEVEL): NSpid has at most maxPidLevel+1 entries.
const maxPidLevel = 32

// nsSys is what a view reads of a process: its pids in the pid namespaces
// it is in, those namespaces, and its user namespace's id maps. Tests give
// it a model of their own.
type nsSys interface {
	// nspid returns NSpid of /proc/PID/status (the pid in the initial
	// namespace first) appended to out, and the inode of the process's
	// pid namespace.
	nspid(pid uint32, out []uint32) ([]uint32, uint64, error)
	// ancestors returns the inodes of the pid namespaces of pid, its own
	// first, up to the initial one, appended to out.
	ancestors(pid uint32, out []uint64) ([]uint64, error)
	// idMaps returns /proc/PID/uid_map and gid_map, and the inode of the
	// process's user namespace.
	idMaps(pid uint32) (uid, gid []byte, userns uint64, err error)
}

// nsReader is the nsSys of the running system. Paths are made of numbers
// only. For one goroutine at a time.
type nsReader struct {
	path, buf []byte
}

func (r *nsReader) at(pid uint32, file string) string {
	r.path = append(r.path[:0], "/proc/"...)
	r.path = strconv.AppendUint(r.path, uint64(pid), 10)
	r.path = append(r.path, '/')
	r.path = append(r.path, file...)
	return string(r.path)
}

// readFile reads a /proc file into r.buf; the content is valid until the
// next call.
func (r *nsReader) readFile(pid uint32, file string) ([]byte, error) {
	fd, err := unix.Open(r.at(pid, file), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	b, err := readFD(fd, &r.buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.path, err)
	}
	return b, nil
}

func (r *nsReader) nsIno(pid uint32, typ string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(r.at(pid, "ns/"+typ), &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

func (r *nsReader) nspid(pid uint32, out []uint32) ([]uint32, uint64, error) {
	ino, err := r.nsIno(pid, "pid")
	if err != nil {
		return out, 0, err
	}
	b, err := r.readFile(pid, "status")
	if err != nil {
		return out, 0, err
	}
	out, err = parseNSpid(b, pid, out)
	return out, ino, err
}

func (r *nsReader) ancestors(pid uint32, out []uint64) ([]uint64, error) {
	fd, err := unix.Open(r.at(pid, "ns/pid"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return out, err
	}
	for range maxPidLevel + 1 {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return out, err
		}
		out = append(out, st.Ino)
		pfd, err := unix.IoctlRetInt(fd, unix.NS_GET_PARENT)
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return out, nil // the initial namespace: it has no parent
		}
		if err != nil {
			return out, err
		}
		fd = pfd
	}
	unix.Close(fd)
	return out, fmt.Errorf("pid %d: pid namespaces nested deeper than %d", pid, maxPidLevel)
}

func (r *nsReader) idMaps(pid uint32) (uid, gid []byte, userns uint64, err error) {
	if userns, err = r.nsIno(pid, "user"); err != nil {
		return nil, nil, 0, err
	}
	b, err := r.readFile(pid, "uid_map")
	if err != nil {
		return nil, nil, 0, err
	}
	uid = bytes.Clone(b)
	if b, err = r.readFile(pid, "gid_map"); err != nil {
		return nil, nil, 0, err
	}
	return uid, bytes.Clone(b), userns, nil
}

var nspidKey = []byte("\nNSpid:")

// parseNSpid appends to out the pids of the NSpid line of /proc/PID/status
// content b, of process pid: its pid in each pid namespace it is in, the
// initial one first. The first line (Name:) is the process's own name,
// which it can set to anything; the kernel escapes newlines in it, and the
// line is skipped before the search all the same. The line must list pid
// first.
func parseNSpid(b []byte, pid uint32, out []uint32) ([]uint32, error) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[i:]
	} else {
		return out, errors.New("status: no NSpid line")
	}
	i := bytes.Index(b, nspidKey)
	if i < 0 {
		return out, errors.New("status: no NSpid line")
	}
	line := b[i+len(nspidKey):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	n0 := len(out)
	for len(line) > 0 {
		line = bytes.TrimLeft(line, " \t")
		if len(line) == 0 {
			break
		}
		j := bytes.IndexAny(line, " \t")
		if j < 0 {
			j = len(line)
		}
		v, err := strconv.ParseUint(string(line[:j]), 10, 32)
		if err != nil || v == 0 {
			return out[:n0], fmt.Errorf("status: NSpid: %q is not a pid", line[:j])
		}
		if len(out)-n0 > maxPidLevel {
			return out[:n0], fmt.Errorf("status: NSpid: more than %d levels", maxPidLevel+1)
		}
		out = append(out, uint32(v))
		line = line[j:]
	}
	switch {
	case len(out) == n0:
		return out, errors.New("status: NSpid is empty")
	case out[n0] != pid:
		return out[:n0], fmt.Errorf("status: NSpid begins with %d, not the process's pid %d", out[n0], pid)
	}
	return out, nil
}
