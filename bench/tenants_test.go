package bench

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/control"
)

var (
	containers  = flag.Int("containers", 100, "registered containers of the auditd-ns-N sides; 0 leaves those sides out")
	tenantQueue = flag.String("tenantqueue", "", "the containers' memory queue (such as 256MiB, to measure the largest burst); empty for the default")
)

// tenantSides are auditd-ns with registered containers (cgroup
// attribution, file targets) and the generator in the first container;
// in the stalled side that container's target is a TCP peer that accepts
// and never reads.
func tenantSides() []string {
	if *containers == 0 {
		return nil
	}
	return []string{fmt.Sprintf("auditd-ns-%d", *containers), fmt.Sprintf("auditd-ns-%d-stalled", *containers)}
}

// tenantSetup is what a tenant side needs: the containers directory and
// the cgroup the generator joins.
type tenantSetup struct {
	containersDir string
	genCgroup     string
	firstLog      string // the first container's file target (not stalled)
}

// cgroupSets counts setUpTenants calls, to name each run's cgroups apart.
var cgroupSets int

// setUpTenants creates n cgroups and container files in dir, removed when
// the test ends.
func setUpTenants(t *testing.T, dir string, n int, stalled bool) tenantSetup {
	s := tenantSetup{containersDir: filepath.Join(dir, "containers")}
	must(t, os.MkdirAll(s.containersDir, 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "tenants"), 0o700))
	var stalledAddr string
	if stalled {
		stalledAddr = stalledPeer(t)
	}
	cgroupSets++
	for i := range n {
		cg := fmt.Sprintf("/sys/fs/cgroup/unified/auditd-ns-bench-%d-%d-%d", os.Getpid(), cgroupSets, i)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Skipf("needs cgroup v2 at /sys/fs/cgroup/unified: %v", err)
		}
		t.Cleanup(func() { os.Remove(cg) })
		log := filepath.Join(dir, "tenants", fmt.Sprintf("t%d.log", i))
		target := fmt.Sprintf("{file: %s}", log)
		if i == 0 {
			s.genCgroup, s.firstLog = cg, log
			if stalled {
				target, s.firstLog = fmt.Sprintf("{remote: %s}", stalledAddr), ""
			}
		}
		c := fmt.Sprintf("name: t%d\ncgroup: %s\ndeliver: %s\n", i, cg, target)
		if *tenantQueue != "" {
			c += fmt.Sprintf("queue: {memory: %s}\n", *tenantQueue)
		}
		must(t, os.WriteFile(filepath.Join(s.containersDir, fmt.Sprintf("t%d.yaml", i)), []byte(c), 0o600))
	}
	return s
}

// stalledPeer accepts connections on loopback and never reads from them.
func stalledPeer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestIntegrationTenantBurst runs only the side with registered
// containers and a healthy file target, -rounds times, and logs for each
// round the copies its target got, the copies its queue dropped, the most
// bytes its queue held (the burst the target had to absorb), and the
// records the router left unrouted (its overflow: those reach no
// container; every container is told how many, which this does not count). A round fails when events are
// missing from that file with no queue-lost notice to account for them. It is
// how the default queue is sized: run it with -tenantqueue 256MiB to see
// the whole burst. AUDITD_NS_BENCH=1, like the side-by-side.
func TestIntegrationTenantBurst(t *testing.T) {
	if os.Getenv("AUDITD_NS_BENCH") != "1" {
		t.Skip("registers with the kernel for minutes: run it with AUDITD_NS_BENCH=1")
	}
	if *containers == 0 {
		t.Skip("-containers 0")
	}
	b := build(t)
	ctl := testkernel.Take(t)
	t.Logf("load average %s at start", loadAverage())
	side := tenantSides()[0]
	var dropped, peak, overflow int64
	for round := range *rounds {
		run := runKernel(t, ctl, b, side, round+1, *genTime)
		if run.Err != "" {
			t.Errorf("round %d: %s", round+1, run.Err)
		}
		dropped += run.Dropped
		peak = max(peak, run.Peak)
		overflow += max(run.Overflow, 0)
		// Each event is three copies (SYSCALL, PROCTITLE, EOE); drops are
		// counted in copies. A tenant must get every event or be told.
		if missing := run.Calls - run.Copies - (run.Dropped+2)/3; run.Err == "" && missing > 0 {
			t.Errorf("round %d: %d of %d events neither in the first container's file nor said lost in it (router overflow: %d records)",
				round+1, missing, run.Calls, run.Overflow)
		}
		t.Logf("round %d: %.0f calls/s, %d of %d events in the first container's file, %d dropped, its queue's peak %.1f KiB; "+
			"the router left %d records unrouted (overflow) and attributed %d events to no container",
			round+1, run.rate(), run.Copies, run.Calls, run.Dropped, float64(run.Peak)/1024, run.Overflow, run.Unattributed)
	}
	t.Logf("%d rounds of %s: %d copies dropped, %d records the router left unrouted, the largest backlog %.1f KiB; load average %s at the end",
		*rounds, side, dropped, overflow, float64(peak)/1024, loadAverage())
}

// drainTenant waits, at most a minute, until the named container of the
// daemon whose state is in dir has delivered what it was given: the router
// no further behind the host log than behind0 (what it was before the
// load: the daemon's own records and those before the containers were
// registered never reach it), nothing queued, and nothing more delivered
// over 200 ms (the router may still hold an event when the host log is
// complete). Copies still queued when the daemon stops are lost without a
// notice in the file, so a run that stopped earlier would count them as
// neither delivered nor dropped.
func drainTenant(binary, dir, name string, behind0 int64) error {
	var last uint64
	stable := 0
	for deadline := time.Now().Add(time.Minute); stable < 2; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("container %s still delivering after a minute", name)
		}
		st, err := daemonStatus(binary, dir)
		if err != nil {
			return err
		}
		found := false
		for _, c := range st.Containers {
			if c.Name != name {
				continue
			}
			found = true
			if c.Queued == 0 && c.Delivered+c.Dropped == last && routerBehind(st) <= behind0 {
				stable++
			} else {
				stable = 0
			}
			last = c.Delivered + c.Dropped
		}
		if !found {
			return fmt.Errorf("no container %s in ctl status", name)
		}
	}
	return nil
}

// daemonStatus is ctl status --json of the daemon whose state is in dir.
func daemonStatus(binary, dir string) (control.Status, error) {
	var st control.Status
	out, err := exec.Command(binary, "ctl", "--socket", filepath.Join(dir, "control.sock"), "status", "--json").Output()
	if err != nil {
		return st, fmt.Errorf("ctl status: %w", err)
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return st, fmt.Errorf("ctl status: %w", err)
	}
	return st, nil
}

// routerBehind is how many of the host log's records the router has
// neither taken nor counted as overflow; -1 when the status lacks either.
func routerBehind(st control.Status) int64 {
	if st.Router == nil || st.HostLog == nil {
		return -1
	}
	return int64(st.HostLog.Records) - int64(st.Router.Records) - int64(st.Router.Overflow)
}
