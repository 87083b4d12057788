package source

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The kernel sends no process event when a process moves to another cgroup,
// and `sh -c 'echo $$ > cgroup.procs; exec prog'` is often gone before its
// exec event is read. So the tracker also watches writes to the cgroup
// mounts (fanotify, FAN_MODIFY on each mount): an event names the writer's
// pid and the file written, which is enough to know where a process that
// moved itself went, even after it is gone.

// fanMetadataLen is sizeof(struct fanotify_event_metadata): event_len u32,
// vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32.
const (
	fanMetadataLen     = 24
	fanMetadataVersion = 3 // FANOTIFY_METADATA_VERSION
)

// fanEvent is the part of one fanotify_event_metadata the tracker uses.
type fanEvent struct {
	Mask uint64
	FD   int32
	PID  int32
}

// parseFanEvents calls f for each event in b, the content of one read.
func parseFanEvents(b []byte, f func(fanEvent)) error {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < fanMetadataLen {
			return fmt.Errorf("fanotify event of %d bytes, want at least %d", len(b), fanMetadataLen)
		}
		n := int(ne.Uint32(b[0:]))
		if b[4] != fanMetadataVersion {
			return fmt.Errorf("fanotify metadata version %d, want %d", b[4], fanMetadataVersion)
		}
		if n < fanMetadataLen || n > len(b) {
			return fmt.Errorf("fanotify event length %d, %d bytes left", n, len(b))
		}
		f(fanEvent{Mask: ne.Uint64(b[8:]), FD: int32(ne.Uint32(b[16:])), PID: int32(ne.Uint32(b[20:]))})
		b = b[n:]
	}
	return nil
}

// openMoves starts watching writes to every cgroup mount. Without it (no
// CAP_SYS_ADMIN, no fanotify) the tracker still works, on exec re-reads
// alone.
func (t *CgroupTracker) openMoves() error {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return fmt.Errorf("watching cgroup moves: %w", err)
	}
	for _, m := range t.mounts {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_MOUNT, unix.FAN_MODIFY, unix.AT_FDCWD, m.point); err != nil {
			unix.Close(fd)
			return fmt.Errorf("watching cgroup moves: marking %s: %w", m.point, err)
		}
	}
	t.moveFd = fd
	return nil
}

// drainMoves handles the writes to cgroup files waiting on the fanotify
// descriptor.
func (t *CgroupTracker) drainMoves() {
	for range 1024 {
		n, err := unix.Read(t.moveFd, t.moveBuf)
		if errors.Is(err, unix.EAGAIN) {
			return
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			// The kernel could not open the written file for us; the event is gone.
			t.moveErrors.Add(1)
			continue
		}
		if err := parseFanEvents(t.moveBuf[:n], t.handleMove); err != nil {
			t.moveErrors.Add(1)
			t.log.Debug("reading cgroup writes", "error", err)
		}
	}
}

// handleMove applies one write to a cgroup file. A write to cgroup.procs
// (or v1 tasks) moves a process; when the writer itself is still alive its
// /proc/PID/cgroup says exactly where it is, and when it is already exiting
// or gone it is taken to have moved itself (`echo $$ > cgroup.procs`),
// unless bringing the cgroup's members up to date (which covers the
// process an orchestrator moved) places another process there: then the
// writer was a short-lived helper that wrote that one's pid, and stays
// where it was.
func (t *CgroupTracker) handleMove(ev fanEvent) {
	if ev.Mask&unix.FAN_Q_OVERFLOW != 0 {
		t.overruns.Add(1)
		return
	}
	if ev.FD < 0 {
		return
	}
	path, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(ev.FD)))
	unix.Close(int(ev.FD))
	if err != nil || ev.PID <= 0 {
		return
	}
	if base := filepath.Base(path); base != "cgroup.procs" && base != "tasks" {
		return
	}
	dir := filepath.Dir(path)
	d, derr := t.resolve(dir)
	pid := uint32(ev.PID)
	b, err := t.reader.read(pid)
	if err == nil && !t.reader.exiting(pid) {
		t.store(pid, b, false, func(uint32) bool { return false })
		if derr == nil {
			t.members(dir, d, pid)
		}
		return
	}
	if derr != nil {
		return
	}
	if err == nil {
		t.store(pid, b, false, func(uint32) bool { return true })
	}
	// The writer is gone (or going): it moved itself, or it was a helper
	// that wrote another process's pid and exited at once. The cgroup's
	// members tell: when bringing them up to date places another process
	// there, the write was that one's, and the writer stays where it was
	// (taking it for a mover would give a host process's records to the
	// container).
	if t.members(dir, d, pid) > 0 {
		t.helpers.Add(1)
		return
	}
	t.moves.Add(1)
	t.table.move(pid, d, t.now())
}

// maxMembers bounds how many pids of one cgroup.procs are looked at.
const maxMembers = 1 << 16

// members updates the processes listed in dir/cgroup.procs, which a write
// may have moved there (an orchestrator writing its child's pid): each is
// put in d unless the map already has it there. writer is done already. It
// returns how many it placed (moved, or learnt of).
func (t *CgroupTracker) members(dir string, d CgroupDir, writer uint32) int {
	b, err := os.ReadFile(dir + "/cgroup.procs")
	if err != nil {
		return 0
	}
	placed := 0
	for n := 0; len(b) > 0 && n < maxMembers; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		pid, err := strconv.ParseUint(string(line), 10, 32)
		if err != nil || pid == 0 || uint32(pid) == writer {
			continue
		}
		switch known, there := t.table.placed(uint32(pid), d); {
		case !known:
			if t.readProc(uint32(pid), true) {
				placed++
			}
		case !there:
			t.table.move(uint32(pid), d, t.now())
			placed++
		}
	}
	return placed
}

// resolve is CgroupOf with the mounts and hierarchies read at start, for a
// path the kernel gave (no symlinks).
func (t *CgroupTracker) resolve(dir string) (CgroupDir, error) {
	d, err := resolveCgroupDir(dir, t.mounts, t.self)
	return d, err
}

// withPlace returns c with its place in d's hierarchy set to d.Path.
func (c Cgroups) withPlace(d CgroupDir) Cgroups {
	if d.V2 {
		c.V2 = d.Path
		return c
	}
	v1 := make([]CgroupV1, 0, len(c.V1)+1)
	found := false
	for _, h := range c.V1 {
		if h.Hierarchy == d.Hierarchy {
			h.Path, found = d.Path, true
		}
		v1 = append(v1, h)
	}
	if !found {
		v1 = append(v1, CgroupV1{Hierarchy: d.Hierarchy, Controllers: d.Controllers, Path: d.Path})
	}
	c.V1 = v1
	return c
}

// procFormat writes c as the kernel writes /proc/PID/cgroup: v1 hierarchies
// by descending ID, then the v2 line.
func (c Cgroups) procFormat() []byte {
	var sb strings.Builder
	for i := len(c.V1) - 1; i >= 0; i-- {
		fmt.Fprintf(&sb, "%d:%s:%s\n", c.V1[i].Hierarchy, c.V1[i].Controllers, c.V1[i].Path)
	}
	if c.V2 != "" {
		sb.WriteString("0::" + c.V2 + "\n")
	}
	return []byte(sb.String())
}
