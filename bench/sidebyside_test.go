package bench

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

var (
	rounds    = flag.Int("rounds", 5, "rounds of each comparison; the sides alternate within a round")
	genTime   = flag.Duration("gentime", 5*time.Second, "how long the load generator runs per kernel-path run")
	records   = flag.Int("records", 300000, "records the Sender sends per delivery run (the corpus, repeated)")
	audispN   = flag.Int("audisprecords", 60000, "records audisp-remote sends per delivery run: it waits for each ack, so at most a few thousand a second on a loaded machine")
	maxLoad   = flag.Float64("maxload", 0.5, "1-minute load average above which the machine counts as busy: the report goes to the loaded section")
	parts     = flag.String("parts", "kernel,delivery", "comparisons to run: kernel, delivery")
	docPath   = flag.String("doc", "../docs/BENCHMARKS.md", "file whose make-bench section is rewritten; empty for none")
	benchCmd  = flag.String("cmd", "make bench", "the command to name in the report")
	onlySides = flag.String("sides", "", "kernel-path sides to run, comma-separated (such as auditd-ns,bare-batch); empty for all")
	settle    = flag.Duration("settle", 3*time.Minute, "how long to wait, after the build, for the 1-minute load average to fall to -maxload before the figures are taken (make bench's micro-benchmarks and the build raise it)")
	baseBin   = flag.String("basebin", "", "another auditd-ns binary (an earlier build), run as the side auditd-ns-base beside this tree's, to compare the two in one run")
)

// TestIntegrationSideBySide runs the side-by-side comparisons and writes
// their report. It registers with the kernel (kernel part) and starts real
// auditd and audisp-remote processes, so it runs only with AUDITD_NS_BENCH=1.
func TestIntegrationSideBySide(t *testing.T) {
	if os.Getenv("AUDITD_NS_BENCH") != "1" {
		t.Skip("takes minutes and registers with the kernel: run it with make bench (AUDITD_NS_BENCH=1)")
	}
	b := build(t)
	waitForQuiet(t, *maxLoad, *settle)
	rep := &report{Machine: describeMachine(), Started: time.Now().UTC(), Rounds: *rounds, GenTime: *genTime, Command: *benchCmd, MaxLoad: *maxLoad}
	rep.Loaded = rep.Machine.Load1 > *maxLoad
	if rep.Loaded {
		t.Logf("load average %.2f at start, above %.2f: the figures go to the loaded section of %s, not the summary", rep.Machine.Load1, *maxLoad, *docPath)
	}
	if strings.Contains(*parts, "kernel") {
		// A subtest, so that the kernel lock is released (and the audit
		// state restored) as soon as this part ends.
		t.Run("kernel", func(t *testing.T) { rep.Kernel = kernelComparison(t, b) })
	}
	if strings.Contains(*parts, "delivery") {
		rep.Delivery = deliveryComparison(t)
	}
	rep.Machine.LoadAfter = loadAverage()
	md := rep.markdown()
	t.Log("\n" + md)
	if *docPath != "" {
		begin, end := beginMarker, endMarker
		if rep.Loaded {
			begin, end = loadedBegin, loadedEnd
		}
		must(t, replaceSection(*docPath, begin, end, md))
	}
}

// kernelComparison takes the kernel test lock (saving the audit state and
// restoring it at the end) and runs every side once per round, in an order
// that rotates from round to round.
func kernelComparison(t *testing.T, b bins) []kernelRun {
	ctl := testkernel.Take(t)
	var runs []kernelRun
	sides := append(slices.Clone(kernelSides), tenantSides()...)
	if *baseBin != "" {
		sides = append(sides, "auditd-ns-base")
	}
	if *onlySides != "" {
		want := strings.Split(*onlySides, ",")
		sides = slices.DeleteFunc(sides, func(s string) bool { return !slices.Contains(want, s) })
	}
	for round := range *rounds {
		for i := range sides {
			side := sides[(i+round)%len(sides)]
			runs = append(runs, runKernel(t, ctl, b, side, round+1, *genTime))
		}
	}
	return runs
}

// build compiles auditd-ns and the two helper programs.
func build(t *testing.T) bins {
	dir := t.TempDir()
	b := bins{auditdNS: filepath.Join(dir, "auditd-ns"), loadgen: filepath.Join(dir, "loadgen"), bareloop: filepath.Join(dir, "bareloop")}
	for out, pkg := range map[string]string{b.auditdNS: "../cmd/auditd-ns", b.loadgen: "./cmd/loadgen", b.bareloop: "./cmd/bareloop"} {
		if o, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, o)
		}
	}
	return b
}

// waitForQuiet waits up to limit for the 1-minute load average to fall to
// max: it decays over about a minute, so what ran just before (make bench's
// micro-benchmarks, the build) would otherwise count as the machine's load.
func waitForQuiet(t *testing.T, max float64, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for {
		f := strings.Fields(loadAverage())
		load, err := strconv.ParseFloat(f[0], 64)
		if err != nil || load <= max || time.Now().After(deadline) {
			return
		}
		t.Logf("load average %.2f, above %.2f: waiting for it to fall (until %s)", load, max, deadline.Format("15:04:05"))
		time.Sleep(10 * time.Second)
	}
}
