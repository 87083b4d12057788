package procs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/procs"
)

// container is a process started in a cgroup of its own with new pid and
// user namespaces (root there is host uid 100000), as a runtime starts a
// container's init: the host pid of its init, and the init's pid and
// parent pid and its child's pid and parent pid as they saw them.
type container struct {
	initHost, childHost uint32
	initPid, initPPid   uint32
	childPid, childPPid uint32
	during              int64 // a moment both lived, ns since the epoch
}

// startContainer runs the container in dir (a v2 cgroup) until it exits.
func startContainer(t *testing.T, dir string) container {
	t.Helper()
	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	// The child reports itself, then sleeps so that the host can find its
	// host pid among the init's children.
	cmd := exec.Command("/bin/sh", "-c", `echo init $$ $PPID; sh -c 'echo child $$ $PPID; exec sleep 0.5' & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		UseCgroupFD: true,
		CgroupFD:    int(cg.Fd()),
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a container: %v", err)
	}
	c := container{initHost: uint32(cmd.Process.Pid)}
	deadline := time.Now().Add(5 * time.Second)
	for c.childHost == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", c.initHost, c.initHost))
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseUint(f[0], 10, 32)
			c.childHost = uint32(n)
			c.during = time.Now().UnixNano()
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the container: %v: %s", err, out.Bytes())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var who string
		var pid, ppid uint32
		if _, err := fmt.Sscan(sc.Text(), &who, &pid, &ppid); err != nil {
			t.Fatalf("the container said %q", sc.Text())
		}
		switch who {
		case "init":
			c.initPid, c.initPPid = pid, ppid
		case "child":
			c.childPid, c.childPPid = pid, ppid
		}
	}
	if c.childHost == 0 || c.initPid != 1 || c.initPPid != 0 || c.childPid == 0 || c.childPPid != 1 {
		t.Fatalf("the container: %+v: %s", c, out.Bytes())
	}
	return c
}

// TestIntegrationView starts two containers, each with its own pid and
// user namespaces, in cgroups a View was made for, and checks each View's
// answers against what the containers' processes saw, after they exited.
func TestIntegrationView(t *testing.T) {
	tr := startTracker(t, procs.Options{})
	dirA := tempCgroup(t, "/sys/fs/cgroup/unified")
	dirB := tempCgroup(t, "/sys/fs/cgroup/unified")
	va, err := tr.NewView(dirA)
	if err != nil {
		t.Fatal(err)
	}
	defer va.Close()
	vb, err := tr.NewView(dirB)
	if err != nil {
		t.Fatal(err)
	}
	defer vb.Close()
	a := startContainer(t, dirA)
	b := startContainer(t, dirB)
	time.Sleep(100 * time.Millisecond) // the tracker reads the exits
	for _, tc := range []struct {
		what string
		v    *procs.View
		pid  uint32
		want uint32
		at   int64
	}{
		{"a's init in a", va, a.initHost, a.initPid, a.during},
		{"a's child in a", va, a.childHost, a.childPid, a.during},
		{"b's init in b", vb, b.initHost, b.initPid, b.during},
		{"b's child in b", vb, b.childHost, b.childPid, b.during},
		// Not in the container's pid namespace: 0, as getppid() there.
		{"the runtime (this test) in a", va, uint32(os.Getpid()), 0, a.during},
		{"host pid 1 in a", va, 1, 0, a.during},
		{"b's init in a", va, b.initHost, 0, a.during},
		{"a's child in b", vb, a.childHost, 0, b.during},
		{"pid 0", va, 0, 0, a.during},
	} {
		if got := tc.v.Pid(tc.pid, tc.at); got != tc.want {
			t.Errorf("%s: Pid(%d) = %d, want %d", tc.what, tc.pid, got, tc.want)
		}
	}
	for host, want := range map[uint32]uint32{100000: 0, 100033: 33, 165535: 65535, 0: 65534, 1000: 65534, 165536: 65534} {
		if got := va.UID(host); got != want {
			t.Errorf("UID(%d) = %d, want %d", host, got, want)
		}
		if got := vb.GID(host); got != want {
			t.Errorf("GID(%d) = %d, want %d", host, got, want)
		}
	}
	// Before the container began, its pid was another process's (or none).
	if got := va.Pid(a.childHost, a.during-int64(time.Hour)); got != 0 {
		t.Errorf("Pid(%d) an hour ago = %d, want 0", a.childHost, got)
	}
	t.Logf("stats: %+v", tr.Stats())
}

// TestIntegrationViewHost checks a container in the host's pid and user
// namespaces: host pids and ids, as the container sees them too.
func TestIntegrationViewHost(t *testing.T) {
	tr := startTracker(t, procs.Options{})
	dir := tempCgroup(t, "/sys/fs/cgroup/unified")
	v, err := tr.NewView(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1"/cgroup.procs && exec sleep 0.2`, "sh", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	during := time.Now().UnixNano()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	pid := uint32(cmd.Process.Pid)
	if got := v.Pid(pid, during); got != pid {
		t.Errorf("Pid(%d) = %d, want the same", pid, got)
	}
	// Its parent, a host process outside the container, is seen too.
	if got := v.Pid(uint32(os.Getpid()), during); got != uint32(os.Getpid()) {
		t.Errorf("Pid(%d) (the test) = %d, want the same", os.Getpid(), got)
	}
	if v.UID(1234) != 1234 || v.GID(0) != 0 {
		t.Errorf("UID(1234) = %d, GID(0) = %d: want the host's", v.UID(1234), v.GID(0))
	}
}
