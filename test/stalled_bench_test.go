package test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// BenchmarkStalledTenant measures what a container whose target is stalled
// costs the host log. KernelPath/daemon-stalled-tenant against
// KernelPath/daemon compares two daemons run one after the other, and on
// this VM such runs drift apart by more than the few percent sought. Here
// one daemon and one load generator (in the container's cgroup) run
// throughout, and containers are registered and unregistered in turn.
//
// "vs-none" sets the stalled container against no container: the whole
// cost of routing. "vs-healthy" sets it against the same container
// delivering to a file that keeps up: what the stall itself costs. Both
// keep the host log on the disk, as a host does; "vs-none-tmpfs" keeps it
// in memory (/dev/shm), where the daemon's base cost per record is lower
// and steadier, so routing's share of it is larger.
//
// Each of b.N rounds is a phase with the stalled container and one with
// the other setting, in ABBA order. A phase waits phaseSettle after the
// change (the first events of a new table wait for the attribution
// delay), then counts the host log's records for phaseLen. It reports the
// mean over rounds of the time per record with the stalled container over
// the time with the other setting ("stalled/other": 1.02 is 2% slower),
// its standard error, and the daemon's CPU per record in each.
func BenchmarkStalledTenant(b *testing.B) {
	ctl := testkernel.Take(b)
	b.Run("vs-none", func(b *testing.B) { benchPhases(b, ctl, false, b.TempDir()) })
	b.Run("vs-none-tmpfs", func(b *testing.B) {
		dir, err := os.MkdirTemp("/dev/shm", "auditd-ns-bench")
		if err != nil {
			b.Skipf("needs a tmpfs at /dev/shm: %v", err)
		}
		defer os.RemoveAll(dir)
		benchPhases(b, ctl, false, dir)
	})
	b.Run("vs-healthy", func(b *testing.B) { benchPhases(b, ctl, true, b.TempDir()) })
}

// benchPhases runs the rounds with the host log and the daemon's state in
// dir. The log grows by about 250 bytes a record: it is rotated, at 256
// MiB, so that a long run fills neither the disk nor the memory.
func benchPhases(b *testing.B, ctl *source.Control, healthy bool, dir string) {
	const (
		phaseSettle = 300 * time.Millisecond
		phaseLen    = time.Second
	)
	cg := benchCgroup(b)
	must(b, os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	writeConfig(b, dir, fmt.Sprintf("flush: incremental_async\nlost_check_interval: 100ms\nmax_log_file: 256\nnum_logs: 2\ncontainers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir),
		"-D\n"+benchRule(b))
	d := start(b, ctl, dir)
	defer d.stop()
	ctx := context.Background()
	c, err := control.Dial(ctx, filepath.Join(dir, "control.sock"))
	must(b, err)
	defer c.Close()
	// settings[0] is the other setting, settings[1] the stalled container.
	settings := [2][]byte{nil, fmt.Appendf(nil, "name: stalled\ncgroup: %s\ndeliver: {remote: %s}\nqueue: {memory: 1MiB}\n", cg, stalledPeer(b))}
	if healthy {
		settings[0] = fmt.Appendf(nil, "name: healthy\ncgroup: %s\ndeliver: {file: %s/tenant.log}\nqueue: {memory: 1MiB}\n", cg, dir)
	}
	names := [2]string{"", "stalled"}
	if healthy {
		names[0] = "healthy"
	}
	// dropped counts the stalled container's copies dropped, delivered the
	// healthy one's delivered: proof that each was what it says.
	var dropped, delivered uint64
	cur := -1 // the setting in place, -1 none yet
	unset := func() {
		if cur < 0 || names[cur] == "" {
			return
		}
		// A short run on a slow machine may end before the stalled queue
		// has filled (its memory, the sender's window and the socket's
		// buffers): the load goes on until it has, for at most 10 s.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			cs, err := c.Containers(ctx)
			must(b, err)
			var d, v uint64
			for _, ci := range cs {
				switch ci.Name {
				case "stalled":
					d = ci.Dropped
				case "healthy":
					v = ci.Delivered
				}
			}
			if names[cur] != "stalled" || d > 0 || time.Now().After(deadline) {
				dropped, delivered = dropped+d, delivered+v
				break
			}
		}
		_, err := c.Unregister(ctx, names[cur], control.ModeSpool, 0)
		must(b, err)
	}
	set := func(k int) {
		if k == cur {
			return
		}
		unset()
		if settings[k] != nil {
			_, err := c.Register(ctx, names[k]+".yaml", settings[k], false)
			must(b, err)
		}
		cur = k
	}
	gen := startLoad(b, math.MaxInt)
	defer gen.kill()
	lost0 := lost(b, ctl)
	pid := d.cmd.Process.Pid
	sample := func() (uint64, float64, time.Time) {
		st, err := c.Status(ctx)
		must(b, err)
		return st.HostLog.Records, cpuSeconds(b, pid), time.Now()
	}
	phase := func(k int) (nsPerRecord, cpuPerRecord float64) {
		set(k)
		time.Sleep(phaseSettle)
		r0, c0, t0 := sample()
		time.Sleep(phaseLen)
		r1, c1, t1 := sample()
		n := float64(r1 - r0)
		return float64(t1.Sub(t0).Nanoseconds()) / n, (c1 - c0) * 1e9 / n
	}
	gen.run()
	b.ResetTimer()
	var ratios, cpuOther, cpuStalled []float64
	for i := range b.N {
		var ns, cpu [2]float64
		for j := range 2 {
			k := j ^ i%2 // ABBA: other, stalled, stalled, other, ...
			ns[k], cpu[k] = phase(k)
		}
		ratios = append(ratios, ns[1]/ns[0])
		cpuOther, cpuStalled = append(cpuOther, cpu[0]), append(cpuStalled, cpu[1])
	}
	b.StopTimer()
	unset()
	if dropped == 0 {
		b.Fatalf("the stalled container's queue dropped nothing: it was not stalled")
	}
	if healthy && delivered == 0 {
		b.Fatalf("the healthy container delivered nothing")
	}
	mean, se := meanSE(ratios)
	b.ReportMetric(mean, "stalled/other")
	b.ReportMetric(se, "se")
	b.ReportMetric(avg(cpuOther), "cpu-ns/rec-other")
	b.ReportMetric(avg(cpuStalled), "cpu-ns/rec-stalled")
	b.ReportMetric(float64(lost(b, ctl)-lost0), "lost")
}

func avg(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// meanSE returns the mean of xs and its standard error (0 for one value).
func meanSE(xs []float64) (mean, se float64) {
	mean = avg(xs)
	if len(xs) < 2 {
		return mean, 0
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(xs)-1) / float64(len(xs)))
}
