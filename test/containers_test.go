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

// runHeld runs n processes one after another, each a fresh shell that
// joins cgroup dir and execs prog (a private copy of sleep) for a minute,
// and ends each once file holds one more SYSCALL record of key than before
// it (or after a generous deadline; the caller counts exactly). A process
// that moves itself and exits at once can be gone before the stock
// kernel's tracker reads it: its events then go to no container, by design
// (docs/containers.md: a writer gone when its write is read); on a loaded
// host that happens to some runs of /bin/true. Alive until its event is
// routed, the process is always read, and a wrong count is a wrong
// attribution.
func runHeld(t *testing.T, dir, prog string, n int, file, key string) {
	t.Helper()
	for range n {
		b, _ := os.ReadFile(file)
		before := strings.Count(string(b), ` key="`+key+`"`)
		cmd := exec.Command("/bin/sh", "-c", fmt.Sprintf("echo $$ > %s/cgroup.procs && exec %s 60", dir, prog))
		must(t, cmd.Start())
		waitKeyCount(file, key, before+1, 10*time.Second)
		cmd.Process.Kill()
		cmd.Wait()
	}
}

func containerFile(t *testing.T, dir, name, body string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "containers", name+".yaml"), []byte(body), 0o600))
}

// waitKeyCount waits until file holds at least want SYSCALL records with
// rule key key, or until timeout has passed; the caller then counts
// exactly (ausearchCount) and fails on a wrong count. It waits on the file,
// not for a fixed time: on a loaded host routing and delivery take
// long, and a fixed sleep before counting fails by timing.
func waitKeyCount(file, key string, want int, timeout time.Duration) {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(file)
		if strings.Count(string(b), ` key="`+key+`"`) >= want {
			return
		}
	}
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
	prog := privateCopy(t, dir, "/bin/sleep", "sleep-for-test")
	key := testKey("exec")
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {file: %s/a/audit.log}\n", a, dir))
	containerFile(t, dir, "b", fmt.Sprintf("name: b\nparent: a\ncgroup: %s\ndeliver: {file: %s/b/audit.log}\n", ab, dir))
	containerFile(t, dir, "c", fmt.Sprintf("name: c\ncgroup: %s\ndeliver: {file: %s/c/audit.log}\nrules:\n  - keep: {key: %s}\n  - default: drop\n", c, dir, key))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir), "-D\n"+execRule(prog, key))
	d := start(t, ctl, dir)
	busyHost(t)
	runHeld(t, a, prog, 3, filepath.Join(dir, "a/audit.log"), key)
	runHeld(t, ab, prog, 4, filepath.Join(dir, "b/audit.log"), key)
	runHeld(t, c, prog, 5, filepath.Join(dir, "c/audit.log"), key)
	want := []struct {
		file string
		want int
	}{
		{d.log, 12},
		{filepath.Join(dir, "a/audit.log"), 7}, // a and its nested b
		{filepath.Join(dir, "b/audit.log"), 4},
		{filepath.Join(dir, "c/audit.log"), 5},
	}
	// Events close on EOE, and reach a container's file after the router
	// has attributed them (on a stock kernel once the process-events
	// tracker has caught up, which takes long on a loaded host) and its
	// delivery has written them: wait for each file's count, then count
	// exactly with ausearch once the daemon has stopped. A count that
	// never comes (attribution broken) fails there, after the deadline.
	for _, tc := range want {
		waitKeyCount(tc.file, key, tc.want, 30*time.Second)
	}
	// The tracker's and router's counters, to tell a lost event from a
	// misattributed one when a count is wrong.
	status, _ := ctlAt(t, filepath.Join(dir, "control.sock"), "status")
	d.stop()
	for _, tc := range want {
		if got := ausearchCount(t, tc.file, "-k", key); got != tc.want {
			t.Errorf("%s: ausearch -k %s found %d events, want %d\n%s\nctl status before the stop:\n%s", tc.file, key, got, tc.want, d.stderrText(), status)
		}
		checkLines(t, tc.file)
	}
	// c's rules keep only the test's key; nothing else reached it.
	data, _ := os.ReadFile(filepath.Join(dir, "c/audit.log"))
	if n := strings.Count(string(data), "type=SYSCALL "); n != 5 {
		t.Errorf("c's target has %d SYSCALL records, want 5", n)
	}
}
