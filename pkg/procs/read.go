package procs

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// readProc reads /proc/PID/cgroup into the history: a sighting of the
// process, now; begun says it is from the sweep of /proc at start. False
// means the process is gone. For Run's goroutine (and NewTracker's).
func (t *Tracker) readProc(pid uint32, begun bool) bool {
	ok, _ := t.readProcOf(pid, begun, false)
	return ok
}

// readProcOK is readProcOf's ok.
func (t *Tracker) readProcOK(pid uint32, begun, other bool) bool {
	ok, _ := t.readProcOf(pid, begun, other)
	return ok
}

// readProcOf is readProc; other says the process is read because it is
// listed in a cgroup another process wrote to. blind says the read told
// nothing of its v1 places (see store).
func (t *Tracker) readProcOf(pid uint32, begun, other bool) (ok, blind bool) {
	b, err := t.sys.read(pid)
	if err != nil {
		return false, false
	}
	_, blind, ok = t.store(pid, b, begun, other)
	if ok {
		t.capture(pid)
	}
	return ok, blind
}

// store puts content read from /proc/PID/cgroup in the history. An exiting
// process (and a zombie) reads as in the root of every v1 hierarchy, the
// kernel having moved it there: when every v1 line of the content reads
// the root and the process is exiting, the read is blind for v1: its v1
// places are kept from the history (or left unknown), only the v2 line,
// which stays right, is taken, and the read is no sighting in them (the
// last one stays the last). moved says the process was seen in other
// cgroups than before.
func (t *Tracker) store(pid uint32, b []byte, begun, other bool) (moved, blind, ok bool) {
	if allV1Roots(b) && t.sys.exiting(pid) {
		cg, err := parseProcCgroup(b)
		if err != nil {
			return false, false, false
		}
		blind = true
		var old Cgroups
		if _, live := t.table.live(pid); live {
			old, _ = t.table.current(pid)
		}
		cg.V1 = old.V1
		b = cg.procFormat()
	}
	moved, err := t.table.observeRead(pid, b, t.now(), begun, other, blind)
	if err != nil {
		t.log.Debug("unreadable /proc/PID/cgroup", "pid", pid, "error", err)
		return false, false, false
	}
	return moved, blind, true
}

// allV1Roots reports whether content of /proc/PID/cgroup has v1 lines
// ("ID:controllers:path", ID not 0) and all of them read the root, as an
// exiting process's do. Unparsable lines count as not the root.
func allV1Roots(b []byte) bool {
	n := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(line) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte("0::")) {
			continue
		}
		i := bytes.LastIndexByte(line, ':')
		if i < 0 || string(line[i+1:]) != "/" {
			return false
		}
		n++
	}
	return n > 0
}

// procSys is what the tracker reads of the system: /proc/PID/cgroup,
// whether a process is exiting, and a cgroup's cgroup.procs. Tests give
// it a model of their own.
type procSys interface {
	read(pid uint32) ([]byte, error)
	exiting(pid uint32) bool
	members(dir string) ([]byte, error)
}

// procReader reads /proc/PID/cgroup into a buffer it reuses, with as few
// system calls as it can: the race with a short-lived process's exit is
// won or lost here. For one goroutine at a time.
type procReader struct {
	path, buf []byte
}

// read returns the file's content, valid until the next call.
func (r *procReader) read(pid uint32) ([]byte, error) {
	r.path = append(r.path[:0], "/proc/"...)
	r.path = strconv.AppendUint(r.path, uint64(pid), 10)
	r.path = append(r.path, "/cgroup"...)
	fd, err := unix.Open(string(r.path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return readFD(fd, &r.buf)
}

// readFD reads fd to its end into *buf, which it grows as needed (to 1 MiB
// at most: /proc files are the kernel's, but a bound costs nothing). The
// content is valid until *buf is next used.
func readFD(fd int, buf *[]byte) ([]byte, error) {
	if *buf == nil {
		*buf = make([]byte, 4096)
	}
	n := 0
	for {
		if n == len(*buf) {
			if n >= 1<<20 {
				return nil, errors.New("longer than 1MiB")
			}
			*buf = append(*buf, make([]byte, n)...)
		}
		m, err := unix.Read(fd, (*buf)[n:])
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return (*buf)[:n], nil
		}
		n += m
	}
}

// exiting reports whether process pid is exiting (PF_EXITING, set before
// the kernel moves it out of its v1 cgroups) or gone.
func (r *procReader) exiting(pid uint32) bool {
	r.path = append(r.path[:0], "/proc/"...)
	r.path = strconv.AppendUint(r.path, uint64(pid), 10)
	r.path = append(r.path, "/stat"...)
	fd, err := unix.Open(string(r.path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	var b [1024]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return true
	}
	return statExiting(b[:n])
}

// members returns the content of dir/cgroup.procs.
func (r *procReader) members(dir string) ([]byte, error) {
	return os.ReadFile(dir + "/cgroup.procs")
}

// pfExiting is PF_EXITING of include/linux/sched.h.
const pfExiting = 0x4

// statExiting reads the state and flags of /proc/PID/stat ("pid (comm)
// state ppid pgrp session tty tpgid flags ..."): a zombie, a dead task or
// one with PF_EXITING is exiting. Unreadable content counts as exiting.
func statExiting(b []byte) bool {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return true
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 7 || f[0] == "Z" || f[0] == "X" || f[0] == "x" {
		return true
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	return err != nil || flags&pfExiting != 0
}
