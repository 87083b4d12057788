package test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// privateCopy copies the program at src into dir under name, so that a
// rule on its exe selects this test's executions and no one else's.
func privateCopy(t testing.TB, dir, src, name string) string {
	t.Helper()
	prog := filepath.Join(dir, name)
	b, err := os.ReadFile(src)
	must(t, err)
	must(t, os.WriteFile(prog, b, 0o755))
	return prog
}

// TestIntegrationCgroupMoveAfterExec is runc's sequence on a stock kernel:
// a child of the runtime execs (runc init) in the runtime's cgroup, the
// runtime moves it into the container's cgroup, and it then execs the
// container's program. The first execve is the host's, the second the
// container's: attribution goes by where the process was when the event
// happened, not where it is when the event is routed.
func TestIntegrationCgroupMoveAfterExec(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	a := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-move-%d", os.Getpid()))
	initProg := privateCopy(t, dir, "/bin/sh", "sh-as-init")
	prog := privateTrue(t, dir)
	keyInit, keyProg := testKey("init"), testKey("prog")
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {file: %s/a/audit.log}\n", a, dir))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir),
		"-D\n"+execRule(initProg, keyInit)+execRule(prog, keyProg))
	d := start(t, ctl, dir)
	busyHost(t)
	const rounds = 5
	for range rounds {
		cmd := exec.Command(initProg, "-c", "read x; exec "+prog)
		in, err := cmd.StdinPipe()
		must(t, err)
		must(t, cmd.Start())
		time.Sleep(20 * time.Millisecond) // past its exec, well within the router's delay
		must(t, os.WriteFile(filepath.Join(a, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644))
		time.Sleep(50 * time.Millisecond)
		io.WriteString(in, "go\n")
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("the moved process: %v", err)
		}
	}
	// Wait for the events, not for a time (see waitKeyCount); the exact
	// counts, the zeroes too, are taken once the daemon has stopped and
	// routed everything it had.
	waitKeyCount(d.log, keyProg, rounds, 30*time.Second)
	waitKeyCount(filepath.Join(dir, "a/audit.log"), keyProg, rounds, 30*time.Second)
	d.stop()
	for _, tc := range []struct {
		file, key string
		want      int
	}{
		{d.log, keyInit, rounds},
		{d.log, keyProg, rounds},
		{filepath.Join(dir, "a/audit.log"), keyInit, 0},
		{filepath.Join(dir, "a/audit.log"), keyProg, rounds},
	} {
		if got := countIfAny(t, tc.file, tc.key); got != tc.want {
			t.Errorf("%s: ausearch -k %s found %d events, want %d\n%s", tc.file, tc.key, got, tc.want, d.stderrText())
		}
	}
}

// TestIntegrationCgroupBackToBackHelpers: short-lived helpers write other
// processes' pids into a container's cgroup.procs, two at a time, and exit
// at once. The processes they name go into the container; the helpers, host
// processes, do not: their own execve stays the host's.
func TestIntegrationCgroupBackToBackHelpers(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	a := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-helpers-%d", os.Getpid()))
	helper := privateCopy(t, dir, "/bin/sh", "sh-as-helper")
	key := testKey("helper")
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {file: %s/a/audit.log}\n", a, dir))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir),
		"-D\n"+execRule(helper, key))
	d := start(t, ctl, dir)
	const rounds = 10
	for range rounds {
		var targets []*exec.Cmd
		for range 2 {
			c := exec.Command("/bin/sleep", "1")
			must(t, c.Start())
			targets = append(targets, c)
		}
		var wg sync.WaitGroup
		for _, c := range targets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := exec.Command(helper, "-c", `echo "$2" > "$1"/cgroup.procs`, "sh", a, strconv.Itoa(c.Process.Pid)).CombinedOutput()
				if err != nil {
					t.Errorf("helper: %v: %s", err, out)
				}
			}()
		}
		wg.Wait()
		for _, c := range targets {
			c.Process.Kill()
			c.Wait()
		}
	}
	waitKeyCount(d.log, key, 2*rounds, 30*time.Second)
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != 2*rounds {
		t.Errorf("host log: %d helper execs, want %d", got, 2*rounds)
	}
	if got := countIfAny(t, filepath.Join(dir, "a/audit.log"), key); got != 0 {
		t.Errorf("the container got %d of the helpers' execs, want 0\n%s", got, d.stderrText())
	}
}

// countIfAny is ausearchCount of key, 0 for a file never written.
func countIfAny(t testing.TB, file, key string) int {
	t.Helper()
	if _, err := os.Stat(file); os.IsNotExist(err) {
		return 0
	}
	return ausearchCount(t, file, "-k", key)
}
