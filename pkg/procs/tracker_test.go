package procs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/procs"
	"github.com/hashicorp/go-hclog"
)

// startTracker starts a tracker and its Run, stopped at the end of the test.
func startTracker(t *testing.T, opt procs.Options) *procs.Tracker {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for the process-events connector")
	}
	tr, err := procs.NewTracker(hclog.NewNullLogger(), opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		tr.Close()
	})
	return tr
}

// tempCgroup makes a cgroup under mount and removes it at the end.
func tempCgroup(t *testing.T, mount string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
		t.Skipf("needs a cgroup mount at %s: %v", mount, err)
	}
	dir := filepath.Join(mount, fmt.Sprintf("auditd-ns-test-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making a cgroup: %v", err)
	}
	t.Cleanup(func() {
		// The cgroup empties once the short-lived process is reaped.
		for i := 0; ; i++ {
			err := os.Remove(dir)
			if err == nil || os.IsNotExist(err) {
				return
			}
			if i == 50 {
				t.Errorf("removing cgroup %s: %v", dir, err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	return dir
}

// runIn runs `sh -c 'echo $$ > dir/cgroup.procs; exec /bin/true'` and
// returns its pid once it has exited and been reaped.
func runIn(t *testing.T, dir string) uint32 {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1"/cgroup.procs && exec /bin/true`, "sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh: %v: %s", err, out)
	}
	return uint32(cmd.Process.Pid)
}

func checkAttributed(t *testing.T, tr *procs.Tracker, dir string) {
	t.Helper()
	d, err := tr.Dir(dir)
	if err != nil {
		t.Fatal(err)
	}
	parent, err := tr.Dir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	missed := 0
	before := tr.Stats()
	for range 20 {
		pid := runIn(t, dir)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Fatalf("pid %d still in /proc after it was reaped", pid)
		}
		// Let Run read the exit (the reaped process is gone from /proc, so
		// only the tracker's history can answer).
		var c procs.Cgroups
		var ok bool
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if c, ok = tr.Current(pid); ok && c.Within(d) {
				break
			}
			time.Sleep(time.Millisecond)
		}
		if !ok {
			t.Fatalf("Current(%d): not found", pid)
		}
		if !c.Within(d) {
			// Known only when the tracker read the process before it was
			// gone: at its exec, or at its write to cgroup.procs.
			missed++
			continue
		}
		if !c.Within(parent) {
			t.Errorf("Current(%d) = %v, not within the parent %+v", pid, c, parent)
		}
	}
	after := tr.Stats()
	if missed > int(after.ExecMissed-before.ExecMissed) || missed > int(after.Gone-before.Gone) || missed == 20 {
		t.Errorf("%d of 20 processes not placed in %s; stats before %+v, after %+v", missed, d.Path, before, after)
	}
	t.Logf("stats: %+v", tr.Stats())
}

func TestIntegrationCgroupTrackerV2(t *testing.T) {
	tr := startTracker(t, procs.Options{})
	dir := tempCgroup(t, "/sys/fs/cgroup/unified")
	checkAttributed(t, tr, dir)
}

func TestIntegrationCgroupTrackerV1(t *testing.T) {
	tr := startTracker(t, procs.Options{})
	dir := tempCgroup(t, "/sys/fs/cgroup/pids")
	checkAttributed(t, tr, dir)
}

// TestIntegrationCgroupTrackerRetain checks that an exited process's entry
// goes after Retain, and that a parent's pid answers for an unknown one.
func TestIntegrationCgroupTrackerRetain(t *testing.T) {
	tr := startTracker(t, procs.Options{Retain: 50 * time.Millisecond})
	dir := tempCgroup(t, "/sys/fs/cgroup/unified")
	d, err := tr.Dir(filepath.Base(dir)) // relative to Root
	if err != nil {
		t.Fatal(err)
	}
	pid := runIn(t, dir)
	time.Sleep(100 * time.Millisecond)
	runIn(t, dir) // an exit, which expires older entries
	time.Sleep(20 * time.Millisecond)
	if c, ok := tr.Current(pid); ok && c.Within(d) {
		t.Errorf("Lookup(%d) after Retain: %v, want gone", pid, c)
	}
	self := uint32(os.Getpid())
	now := time.Now().UnixNano()
	if tr.Attribute(pid, self, now, []string{dir}) != -1 || tr.Stats().ParentHits == 0 {
		t.Errorf("Attribute(%d, %d): the parent (outside %s) did not answer: %+v", pid, self, dir, tr.Stats())
	}
	if s := tr.Stats(); s.Exits == 0 || s.Execs == 0 || s.Forks == 0 {
		t.Errorf("stats: %+v", s)
	}
}

func TestIntegrationCgroupTrackerClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN) for the process-events connector")
	}
	tr, err := procs.NewTracker(nil, procs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tr.Run(context.Background()) }()
	time.Sleep(20 * time.Millisecond)
	tr.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close did not interrupt Run")
	}
	if _, ok := tr.Current(uint32(os.Getpid())); !ok {
		t.Error("Lookup of self after Close: not found")
	}
}

// watchedCgroup is a new cgroup under mount, as the tracker resolves it.
type watchedCgroup struct {
	mount, dir string
	d          procs.CgroupDir
}

// watchedCgroups starts a tracker that watches writes to cgroup.procs and
// makes a cgroup on the v2 mount and on the v1 pids mount.
func watchedCgroups(t *testing.T) (*procs.Tracker, []watchedCgroup) {
	tr := startTracker(t, procs.Options{})
	if !tr.Stats().Watching {
		t.Skip("needs fanotify on the cgroup mounts (CAP_SYS_ADMIN)")
	}
	var cgs []watchedCgroup
	for _, mount := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/pids"} {
		dir := tempCgroup(t, mount)
		d, err := tr.Dir(dir)
		if err != nil {
			t.Fatal(err)
		}
		cgs = append(cgs, watchedCgroup{mount, dir, d})
	}
	return tr, cgs
}

// TestIntegrationCgroupTrackerMovedByOther moves a running process from
// outside, as an orchestrator does: no exec follows, only the write to
// cgroup.procs tells.
func TestIntegrationCgroupTrackerMovedByOther(t *testing.T) {
	tr, cgs := watchedCgroups(t)
	for _, cg := range cgs {
		mount, dir, d := cg.mount, cg.dir, cg.d
		cmd := exec.Command("/bin/sleep", "0.2")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pid := uint32(cmd.Process.Pid)
		time.Sleep(20 * time.Millisecond) // past its exec
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), fmt.Appendf(nil, "%d", pid), 0); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		time.Sleep(20 * time.Millisecond)
		if c, ok := tr.Current(pid); !ok || !c.Within(d) {
			t.Errorf("%s: Lookup(%d) = %v, %v; want within %s", mount, pid, c, ok, d.Path)
		}
		if c, ok := tr.Current(uint32(os.Getpid())); !ok || c.Within(d) {
			t.Errorf("%s: the writer: Lookup = %v, %v; want found, not within %s", mount, c, ok, d.Path)
		}
	}
}

// TestIntegrationCgroupTrackerHelperWroteOther: a short-lived helper (sh)
// writes another process's pid into a cgroup's cgroup.procs and exits at
// once. The other process goes into the cgroup; the helper, a host
// process, must not: taking it for a process that moved itself would give
// its records (its command line among them) to the container.
func TestIntegrationCgroupTrackerHelperWroteOther(t *testing.T) {
	tr, cgs := watchedCgroups(t)
	for _, cg := range cgs {
		mount, dir, d := cg.mount, cg.dir, cg.d
		for range 10 {
			target := exec.Command("/bin/sleep", "3")
			if err := target.Start(); err != nil {
				t.Fatal(err)
			}
			pid := uint32(target.Process.Pid)
			time.Sleep(20 * time.Millisecond) // past its exec
			helper := exec.Command("/bin/sh", "-c", `echo "$2" > "$1"/cgroup.procs`, "sh", dir, strconv.Itoa(int(pid)))
			if out, err := helper.CombinedOutput(); err != nil {
				t.Fatalf("helper: %v: %s", err, out)
			}
			hpid := uint32(helper.Process.Pid)
			var c procs.Cgroups
			var ok bool
			for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if c, ok = tr.Current(pid); ok && c.Within(d) {
					break
				}
			}
			if !ok || !c.Within(d) {
				t.Errorf("%s: the moved process: Lookup(%d) = %v, %v; want within %s", mount, pid, c, ok, d.Path)
			}
			if c, ok := tr.Current(hpid); ok && c.Within(d) {
				t.Errorf("%s: the helper that wrote its pid: Lookup(%d) = %v; want it outside %s", mount, hpid, c, d.Path)
			}
			target.Process.Kill()
			target.Wait()
		}
	}
}

// waitStats polls the tracker's counters until ok says yes (2s at most).
func waitStats(t *testing.T, tr *procs.Tracker, what string, ok func(procs.Stats) bool) procs.Stats {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		s := tr.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIntegrationCgroupTrackerIdle checks that with no cgroup directory
// registered the tracker reads no /proc/PID/cgroup at forks and execs,
// and that once one is, it reads them again and places processes there.
func TestIntegrationCgroupTrackerIdle(t *testing.T) {
	tr := startTracker(t, procs.Options{})
	dir := tempCgroup(t, "/sys/fs/cgroup/unified")
	tr.Follow(nil)
	before := waitStats(t, tr, "idle", func(s procs.Stats) bool { return s.Idle })
	var pids []uint32
	for range 10 {
		cmd := exec.Command("/bin/true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, uint32(cmd.Process.Pid))
	}
	// Each /bin/true forked and exec'd: wait until the tracker has
	// handled their exits, so that their forks and execs are behind.
	for _, pid := range pids {
		deadline := time.Now().Add(2 * time.Second)
		for {
			if _, ok := tr.Current(pid); ok || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	after := waitStats(t, tr, "the execs", func(s procs.Stats) bool { return s.Execs >= before.Execs+10 })
	if after.Reads != before.Reads || !after.Idle {
		t.Errorf("idle with no directory registered: %d reads of /proc at forks and execs (want 0) over %d execs; stats before %+v, after %+v",
			after.Reads-before.Reads, after.Execs-before.Execs, before, after)
	}
	tr.Follow([]string{dir})
	waitStats(t, tr, "reading again", func(s procs.Stats) bool { return !s.Idle })
	checkAttributed(t, tr, dir)
	if s := tr.Stats(); s.Reads < after.Reads+20 {
		t.Errorf("a directory registered: %d reads of /proc at forks and execs of 20 processes, want at least 20; stats %+v", s.Reads-after.Reads, s)
	}
}
