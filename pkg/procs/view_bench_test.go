package procs

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// sleeper starts a shell in new pid and user namespaces (the init of a
// container) running `sleep 60`, and returns the host pid of the sleep (an
// ordinary process of the container, not its init); both are killed at
// the end.
func sleeper(b *testing.B) uint32 {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root to map ids")
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 5000 {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(c)); len(f) > 0 {
			n, _ := strconv.ParseUint(f[0], 10, 32)
			b.Cleanup(func() { syscall.Kill(int(n), syscall.SIGKILL) })
			return uint32(n)
		}
		time.Sleep(time.Millisecond)
	}
	b.Fatal("the container's sleep did not start")
	return 0
}

// BenchmarkCgroupRead is what the tracker does for every process's fork
// and exec already: read /proc/PID/cgroup. The figure to hold the capture
// against.
func BenchmarkCgroupRead(b *testing.B) {
	pid := sleeper(b)
	r := &procReader{}
	for b.Loop() {
		if _, err := r.read(pid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCapture is what the tracker adds for a new process of a
// registered container (view: container): read NSpid from
// /proc/PID/status and its pid namespace's inode, place the namespace
// (from the cache: a container's namespaces are walked once), keep them
// with the process and tell the container's View.
func BenchmarkCapture(b *testing.B) {
	pid := sleeper(b)
	t := &Tracker{log: hclog.NewNullLogger(), table: newPidTable(1<<10, 1e9)}
	v := &View{t: t, initLevel: -1}
	r := &nsReader{}
	var buf [maxPidLevel + 1]uint32
	for b.Loop() {
		nspid, ino, err := r.nspid(pid, buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		ns, err := t.nsc.chain(r, pid, ino, nspid)
		if err != nil {
			b.Fatal(err)
		}
		c := &nsCap{ns: ns, nspid: append([]uint32(nil), nspid...)}
		v.observe(r, pid, c, false)
	}
	if v.UID(100000) != 0 {
		b.Fatalf("the View: uid 100000 is %d", v.UID(100000))
	}
}

// BenchmarkStatusRead is the part of BenchmarkCapture that reads
// /proc/PID/status and stats /proc/PID/ns/pid.
func BenchmarkStatusRead(b *testing.B) {
	pid := sleeper(b)
	r := &nsReader{}
	var buf [maxPidLevel + 1]uint32
	for b.Loop() {
		if _, _, err := r.nspid(pid, buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCaptureElsewhere is what a process of a cgroup no View is for
// costs at its fork and exec: a look at its set's memo.
func BenchmarkCaptureElsewhere(b *testing.B) {
	t := &Tracker{log: hclog.NewNullLogger(), table: newPidTable(1<<10, 1e9)}
	t.table.observe(7, []byte("0::/elsewhere\n"), 1, true, false)
	t.views.Store(&viewList{gen: 1, views: []*View{{t: t, d: CgroupDir{V2: true, Path: "/tenants/a"}}}})
	for b.Loop() {
		t.captureWith(nil, 7, false)
	}
}
