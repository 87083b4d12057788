package procs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/procs"
)

// TestIntegrationContIDView: a tracker for the patched kernel
// (Options.ContID) on this kernel's real process events. A container's
// init in its own pid and user namespaces (root there is host uid 100000)
// is named by an op=set (SetContID, as the daemon calls it) before it
// forks a child: the child is known from its fork event alone, and both
// translate after they exited. A process forked by the test, outside,
// is not followed.
func TestIntegrationContIDView(t *testing.T) {
	tr := startTracker(t, procs.Options{ContID: true})
	v, err := tr.NewContIDView(42, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	cmd := exec.Command("/bin/sh", "-c", `read x; echo init $$ $PPID; sh -c 'echo child $$ $PPID; exec sleep 0.5' & wait`)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWPID,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a container: %v", err)
	}
	initHost := uint32(cmd.Process.Pid)
	tr.SetContID(initHost, 42, time.Now().UnixNano())
	other := exec.Command("/bin/sleep", "0.3")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "go\n")
	var childHost uint32
	var during int64
	for deadline := time.Now().Add(5 * time.Second); childHost == 0 && time.Now().Before(deadline); {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", initHost, initHost))
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.ParseUint(f[0], 10, 32)
			childHost, during = uint32(n), time.Now().UnixNano()
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the container: %v: %s", err, out.Bytes())
	}
	other.Wait()
	time.Sleep(100 * time.Millisecond) // the tracker reads the exits
	said := map[string][2]uint32{}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var who string
		var pid, ppid uint32
		if _, err := fmt.Sscan(sc.Text(), &who, &pid, &ppid); err == nil {
			said[who] = [2]uint32{pid, ppid}
		}
	}
	if childHost == 0 || said["init"] != [2]uint32{1, 0} || said["child"][1] != 1 {
		t.Fatalf("the container: child %d, said %v: %s", childHost, said, out.Bytes())
	}
	for _, tc := range []struct {
		what      string
		pid, want uint32
	}{
		{"the init", initHost, 1},
		{"its child", childHost, said["child"][0]},
		{"the test (its runtime)", uint32(os.Getpid()), 0},
		{"a process outside", uint32(other.Process.Pid), 0},
	} {
		if got := v.Pid(tc.pid, during); got != tc.want {
			t.Errorf("%s: Pid(%d) = %d, want %d", tc.what, tc.pid, got, tc.want)
		}
	}
	if v.UID(100000) != 0 || v.GID(100033) != 33 || v.UID(0) != 65534 {
		t.Errorf("UID(100000) = %d, GID(100033) = %d, UID(0) = %d", v.UID(100000), v.GID(100033), v.UID(0))
	}
	st := tr.Stats()
	if st.Captures != 2 || st.Views != 1 {
		t.Errorf("stats: %+v, want 2 captures (the init and its child only), 1 view", st)
	}
}
