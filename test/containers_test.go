package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// makeCgroup creates a cgroup directory for the test and removes it after.
func makeCgroup(t *testing.T, parent, name string) string {
	t.Helper()
	if _, err := os.Stat(parent); err != nil {
		t.Skipf("needs the cgroup hierarchy at %s: %v", parent, err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("creating cgroup: %v", err)
	}
	t.Cleanup(func() {
		for i := 0; i < 50; i++ {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Errorf("could not remove cgroup %s", dir)
	})
	return dir
}

// runIn runs prog n times, each in a fresh shell that joins cgroup dir.
func runIn(t *testing.T, dir, prog string, n int) {
	t.Helper()
	for range n {
		script := fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s", dir, prog)
		if out, err := exec.Command("/bin/sh", "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("running in %s: %v\n%s", dir, err, out)
		}
	}
}

func containerFile(t *testing.T, dir, name, body string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "containers", name+".yaml"), []byte(body), 0o600))
}

// TestIntegrationCgroupContainers registers two containers by cgroup (one
// v2, one nested in it, and one v1), runs programs in each, and checks with
// ausearch that each file target holds exactly its subtree's events while
// the host log holds all of them.
func TestIntegrationCgroupContainers(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	suffix := fmt.Sprint(os.Getpid())
	a := makeCgroup(t, "/sys/fs/cgroup/unified", "auditd-ns-a-"+suffix)
	ab := makeCgroup(t, a, "b")
	c := makeCgroup(t, "/sys/fs/cgroup/pids", "auditd-ns-c-"+suffix)
	prog := privateTrue(t, dir)
	key := testKey("exec")
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {file: %s/a/audit.log}\n", a, dir))
	containerFile(t, dir, "b", fmt.Sprintf("name: b\nparent: a\ncgroup: %s\ndeliver: {file: %s/b/audit.log}\n", ab, dir))
	containerFile(t, dir, "c", fmt.Sprintf("name: c\ncgroup: %s\ndeliver: {file: %s/c/audit.log}\nrules:\n  - keep: {key: %s}\n  - default: drop\n", c, dir, key))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir), "-D\n"+execRule(prog, key))
	d := start(t, ctl, dir)
	busyHost(t)
	runIn(t, a, prog, 3)
	runIn(t, ab, prog, 4)
	runIn(t, c, prog, 5)
	time.Sleep(time.Second) // events close on EOE; delivery is asynchronous
	d.stop()
	for _, tc := range []struct {
		file string
		want int
	}{
		{d.log, 12},
		{filepath.Join(dir, "a/audit.log"), 7}, // a and its nested b
		{filepath.Join(dir, "b/audit.log"), 4},
		{filepath.Join(dir, "c/audit.log"), 5},
	} {
		if got := ausearchCount(t, tc.file, "-k", key); got != tc.want {
			t.Errorf("%s: ausearch -k %s found %d events, want %d\n%s", tc.file, key, got, tc.want, d.stderrText())
		}
		checkLines(t, tc.file)
	}
	// c's rules keep only the test's key; nothing else reached it.
	data, _ := os.ReadFile(filepath.Join(dir, "c/audit.log"))
	if n := strings.Count(string(data), "type=SYSCALL "); n != 5 {
		t.Errorf("c's target has %d SYSCALL records, want 5", n)
	}
}
