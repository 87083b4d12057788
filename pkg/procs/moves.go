package procs

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
func (t *Tracker) openMoves() error {
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
func (t *Tracker) drainMoves() {
	t.writes = t.writes[:0]
	defer func() { t.handleWrites(t.writes) }()
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

// writeEvent is a write to a cgroup file: by whom, and the file's path.
type writeEvent struct {
	writer uint32
	path   string
}

// handleMove takes one write to a cgroup file into t.writes.
func (t *Tracker) handleMove(ev fanEvent) {
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
	t.writes = append(t.writes, writeEvent{uint32(ev.PID), path})
}

// handleWrites applies the writes read at one wake-up, in order. A write
// that moved nobody the tracker can see (its target already gone, the
// writer not moved) may have moved any process that exited around then:
// those processes' last stretches become uncertain between where they were
// seen and the cgroup written to.
func (t *Tracker) handleWrites(ws []writeEvent) {
	t.unexplained = t.unexplained[:0]
	for i, w := range ws {
		alone := true
		for j := range ws {
			alone = alone && (j == i || ws[j].path != w.path)
		}
		if !t.handleWrite(w.writer, w.path, alone) {
			if d, err := t.resolve(filepath.Dir(w.path)); err == nil {
				t.unexplained = append(t.unexplained, d)
			}
		}
	}
	for _, d := range t.unexplained {
		for _, pid := range t.exitedNow {
			t.table.maybeMoved(pid, d)
		}
		for _, pid := range t.exitedBefore {
			t.table.maybeMoved(pid, d)
		}
	}
	t.lastUnexplained = append(t.lastUnexplained[:0], t.unexplained...)
	t.exitedBefore, t.exitedNow = append(t.exitedBefore[:0], t.exitedNow...), t.exitedNow[:0]
}

// exited is told of each exit handled, for handleWrites.
func (t *Tracker) exited(pid uint32) {
	if len(t.exitedNow) < maxMembers {
		t.exitedNow = append(t.exitedNow, pid)
	}
	for _, d := range t.lastUnexplained {
		t.table.maybeMoved(pid, d)
	}
}

// handleWrite applies a write by process writer to the file path. A write
// to cgroup.procs (or v1 tasks) moves a process, which one the event does
// not say. What can be seen is taken, nothing is guessed:
//   - the writer, when it can still be read, is seen where it is; when it
//     is now in the cgroup it wrote to and was not before, and no other
//     process wrote to that cgroup since the last wake-up (alone), it is
//     taken to have moved itself (`echo $$ > cgroup.procs; exec prog`),
//     and is the container's from its last exec;
//   - the cgroup's members are seen there (a process an orchestrator or a
//     helper moved);
//   - a writer already gone (or exiting, for a v1 cgroup: it then reads
//     as in the roots) may have moved itself, or been a helper
//     writing another pid (back to back with others): from its last
//     sighting on, its records go only to a container holding both places
//     (taking it for a process that moved itself would give a host
//     process's records to the container).
func (t *Tracker) handleWrite(writer uint32, path string, alone bool) (explained bool) {
	if base := filepath.Base(path); base != "cgroup.procs" && base != "tasks" {
		return true
	}
	dir := filepath.Dir(path)
	d, derr := t.resolve(dir)
	if derr != nil {
		return true
	}
	// A zombie is still readable after its exit was handled: that is the
	// writer gone, not a new process with its pid.
	b, err := t.sys.read(writer)
	if err == nil && !t.table.exitedProc(writer) {
		moved, blind, ok := t.store(writer, b, false, false)
		if ok {
			t.capture(writer)
		}
		switch {
		case ok && blind && !d.V2:
			// Exiting: its v1 places read as the roots, where it is
			// is not known, as for a writer gone.
			t.gone.Add(1)
			t.table.gone(writer, d)
		case ok && alone && t.table.selfMove(writer, d, moved, t.watermark.Load()):
			t.moves.Add(1)
		}
		explained = moved
	} else {
		t.gone.Add(1)
		t.table.gone(writer, d)
	}
	return t.members(dir, d, writer) > 0 || explained
}

// maxMembers bounds how many pids of one cgroup.procs are looked at.
const maxMembers = 1 << 16

// members reads dir/cgroup.procs, which a write may have moved a process
// into, and reads /proc/PID/cgroup of each process listed that the
// history does not place in d. writer is done already. It returns how
// many it read.
func (t *Tracker) members(dir string, d CgroupDir, writer uint32) int {
	b, err := t.sys.members(dir)
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
		if _, there := t.table.placed(uint32(pid), d); !there && t.readProcOK(uint32(pid), false, true) {
			placed++
		}
	}
	return placed
}

// resolve is CgroupOf with the mounts and hierarchies read at start, for a
// path the kernel gave (no symlinks).
func (t *Tracker) resolve(dir string) (CgroupDir, error) {
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
