package bench

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// Kernel settings of every kernel-path run. backlog_wait_time is in
// jiffies; it bounds how long a generator blocked on a full backlog (or
// on a missed wake-up) can sleep, so it bounds the run.
const (
	backlogLimit    = 8192
	backlogWaitTime = 2500
)

// kernelRun is one run of the load generator with one reader.
type kernelRun struct {
	Side     string
	Round    int
	Calls    int64   // uname calls the generator made
	Seconds  float64 // how long the generator ran
	Syscalls int64   // SYSCALL records of those calls the reader got
	Records  int64   // every record the reader got (log lines)
	Lost     int64   // rise of the kernel's lost counter
	CPU      float64 // the reader's CPU seconds during the run
	Copies   int64   // events in the generator's container's file target (tenant sides)
	Dropped  int64   // records its queue dropped, as that file says (op=queue-lost)
	Peak     int64   // most bytes its queue held in memory (tenant sides)
	// What the tenant side's daemon said at the end of the run (ctl status
	// --json, after the drain): the router's events attributed to no
	// container, closed without their EOE (partial) and records it did not
	// route because it was too far behind (overflow); the first
	// container's copies routed (records its queue took), delivered,
	// dropped and still queued. -1: the daemon did not answer.
	Unattributed, Partial, Overflow        int64
	Routed, Delivered, QDropped, QueuedEnd int64
	// Behind0 and BehindEnd are the host log's records the router had not
	// taken before the load and at the end (routerBehind).
	Behind0, BehindEnd int64
	// RouterLag is the most records the router was behind the host log
	// (host log records less those routed or overflowed), sampled every
	// 50 ms over the run with -lagtrace (0 without); its overflow begins
	// past the router's backlog (262,144 records).
	RouterLag  int64
	lagSamples string // the samples, in thousands of records (-lagtrace)
	// What kept the generator from calling faster, from its own thread's
	// accounts (loadgen): its CPU seconds, the seconds it waited for a CPU,
	// the seconds it slept (the rest of its wall time: on the kernel's full
	// audit backlog, for one), and its involuntary context switches.
	GenCPU, GenRunDelay, GenSlept float64
	GenPreempted                  int64
	// BacklogWait is the rise of the kernel's backlog_wait_time_actual:
	// the time, in jiffies, that audited tasks slept on a full backlog.
	BacklogWait int64
	Err         string
}

func (r kernelRun) rate() float64 { return float64(r.Calls) / r.Seconds }

// cpuPer100k is the reader's CPU seconds per 100k audited syscalls, that
// is per 100k events of three kernel records each (SYSCALL, PROCTITLE,
// EOE). Per event, not per log line: auditd does not log EOE records.
func (r kernelRun) cpuPer100k() float64 { return r.CPU / float64(r.Syscalls) * 1e5 }

// kernelSides are the readers in the order of the first round: "bare"
// reads one message per recvfrom(2) as auditd does, "bare-batch" reads
// as auditd-ns does (up to 64 per recvmmsg(2), records gathering for
// 1 ms after the socket is empty).
var kernelSides = []string{"auditd", "auditd-ns", "bare", "bare-batch"}

// bins are the programs the benchmark built.
type bins struct{ auditdNS, loadgen, bareloop string }

// runKernel runs the generator for d with the reader side registered.
func runKernel(t *testing.T, ctl *source.Control, b bins, side string, round int, d time.Duration) kernelRun {
	run := kernelRun{Side: side, Round: round}
	dir := t.TempDir()
	_, err := ctl.DeleteRules()
	must(t, err)
	must(t, ctl.SetBacklogLimit(backlogLimit))
	must(t, ctl.SetBacklogWaitTime(backlogWaitTime))
	must(t, ctl.SetEnabled(1))
	defer os.RemoveAll(dir) // the logs are large; remove them before the next run
	var r *reader
	var ten tenantSetup
	switch side {
	case "auditd":
		r = startAuditd(t, ctl, dir)
	case "auditd-ns":
		r = startAuditdNS(t, ctl, dir, b.auditdNS, "")
	case "auditd-ns-base":
		r = startAuditdNS(t, ctl, dir, *baseBin, "")
	case "bare":
		r = startBare(t, ctl, dir, b.bareloop, "-batch", "1", "-gather", "0")
	case "bare-batch":
		r = startBare(t, ctl, dir, b.bareloop, "-batch", fmt.Sprint(source.DefaultBatch), "-gather", source.DefaultGather.String())
	default: // a tenant side
		ten = setUpTenants(t, dir, *containers, strings.HasSuffix(side, "-stalled"))
		r = startAuditdNS(t, ctl, dir, b.auditdNS, "containers_dir: "+ten.containersDir+"\n")
	}
	wire, err := auditrule.Build(fmt.Sprintf("-a always,exit -F arch=b64 -S uname -F exe=%s -k bench", b.loadgen))
	must(t, err)
	must(t, ctl.AddRule(wire))
	st0, err := ctl.Status()
	must(t, err)
	cpu0, err := testaudit.CPUSeconds(r.cmd.Process.Pid)
	must(t, err)
	gen := exec.Command(b.loadgen, "-d", d.String())
	if ten.genCgroup != "" {
		gen.Args = append(gen.Args, "-cgroup", ten.genCgroup)
	}
	var lag *lagWatch
	behind0 := int64(-1)
	if ten.containersDir != "" {
		st, err := daemonStatus(b.auditdNS, dir)
		must(t, err)
		behind0 = routerBehind(st)
	}
	run.Behind0 = behind0
	if ten.containersDir != "" && *lagTrace {
		lag = watchLag(filepath.Join(dir, "control.sock"))
	}
	out, gerr := runTimeout(gen, d+time.Minute)
	if gerr == nil {
		gerr = parseGen(out, &run)
	}
	if gerr != nil {
		run.Err = gerr.Error()
	}
	drain(ctl, r, run.Calls)
	if lag != nil {
		run.RouterLag, run.lagSamples = lag.stop()
	}
	cpu1, err := testaudit.CPUSeconds(r.cmd.Process.Pid)
	must(t, err)
	run.CPU = cpu1 - cpu0
	st1, err := ctl.Status()
	must(t, err)
	run.Lost = int64(st1.Lost) - int64(st0.Lost)
	run.BacklogWait = int64(st1.BacklogWaitTimeActual) - int64(st0.BacklogWaitTimeActual)
	_, err = ctl.DeleteRules()
	must(t, err)
	if ten.firstLog != "" {
		if err := drainTenant(b.auditdNS, dir, "t0", behind0); err != nil {
			t.Logf("%s round %d: draining t0: %v", side, round, err)
		}
	}
	if ten.containersDir != "" {
		tenantFigures(b.auditdNS, dir, "t0", &run)
	}
	if err := r.stop(); err != nil && side != "auditd" {
		t.Logf("%s: stopping: %v: %s", side, err, r.stderrText())
	}
	run.Syscalls, run.Records = r.counts()
	if ten.firstLog != "" {
		run.Copies, run.Dropped = countCopies(ten.firstLog)
	}
	unregisterLeftover(t, ctl)
	t.Logf("%s round %d: %d calls in %.2fs (%.0f/s), %d of them logged, %d records, lost %d, CPU %.2fs, copies %d, dropped %d; generator CPU %.2fs, waited for a CPU %.2fs, slept %.2fs (backlog wait %d jiffies), preempted %d times %s",
		side, round, run.Calls, run.Seconds, run.rate(), run.Syscalls, run.Records, run.Lost, run.CPU, run.Copies, run.Dropped,
		run.GenCPU, run.GenRunDelay, run.GenSlept, run.BacklogWait, run.GenPreempted, run.Err)
	if ten.containersDir != "" {
		t.Logf("%s round %d: router: %d events unattributed, %d partial, %d records overflowed (not routed), at most %d records behind (-lagtrace), %d before the load and %d at the end; t0: %d records routed, %d delivered, %d dropped, %d still queued",
			side, round, run.Unattributed, run.Partial, run.Overflow, run.RouterLag, run.Behind0, run.BehindEnd, run.Routed, run.Delivered, run.QDropped, run.QueuedEnd)
		if lag != nil {
			t.Logf("%s round %d: the router's lag every 50 ms, thousands of records (* overflowing): %s", side, round, run.lagSamples)
		}
	}
	return run
}

// lagTrace makes tenant runs sample the router's lag (a status request
// every 50 ms: the daemon's CPU figure then includes answering them).
var lagTrace = flag.Bool("lagtrace", false, "sample how far the router is behind the host log every 50 ms in the tenant sides' runs, and log the samples")

// lagWatch samples how far the router of a daemon is behind its host log.
type lagWatch struct {
	quit, done chan struct{}
	max        int64
	tr         strings.Builder
}

// watchLag samples every 50 ms until stop.
func watchLag(sock string) *lagWatch {
	w := &lagWatch{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		ctx := context.Background()
		c, err := control.Dial(ctx, sock)
		if err != nil {
			return
		}
		defer c.Close()
		var over uint64
		for tick := time.NewTicker(50 * time.Millisecond); ; {
			select {
			case <-w.quit:
				tick.Stop()
				return
			case <-tick.C:
			}
			st, err := c.Status(ctx)
			if err != nil || st.Router == nil || st.HostLog == nil {
				return
			}
			n := int64(st.HostLog.Records) - int64(st.Router.Records) - int64(st.Router.Overflow)
			w.max = max(w.max, n)
			fmt.Fprintf(&w.tr, " %d", n/1000)
			if st.Router.Overflow > over {
				over = st.Router.Overflow
				w.tr.WriteString("*")
			}
		}
	}()
	return w
}

// stop ends the sampling: the most records behind, and the samples.
func (w *lagWatch) stop() (int64, string) {
	close(w.quit)
	<-w.done
	return w.max, w.tr.String()
}

// tenantFigures asks the daemon whose state is in dir for the router's
// counts and the named container's queue figures (the fields of run
// after Peak); -1 each when it cannot tell.
func tenantFigures(binary, dir, name string, run *kernelRun) {
	run.Peak, run.Unattributed, run.Partial, run.Overflow = -1, -1, -1, -1
	run.Routed, run.Delivered, run.QDropped, run.QueuedEnd = -1, -1, -1, -1
	st, err := daemonStatus(binary, dir)
	if err != nil {
		return
	}
	run.BehindEnd = routerBehind(st)
	if r := st.Router; r != nil {
		run.Unattributed, run.Partial, run.Overflow = int64(r.Unattributed), int64(r.Partial), int64(r.Overflow)
	}
	for _, c := range st.Containers {
		if c.Name == name {
			run.Peak, run.Routed, run.Delivered = int64(c.PeakQueuedBytes), int64(c.Routed), int64(c.Delivered)
			run.QDropped, run.QueuedEnd = int64(c.Dropped), int64(c.Queued)
		}
	}
}

// parseGen reads loadgen's "CALLS SECONDS CPU RUNDELAY SLEPT VOLUNTARY
// INVOLUNTARY".
func parseGen(out []byte, run *kernelRun) error {
	f := strings.Fields(string(out))
	if len(f) != 7 {
		return fmt.Errorf("loadgen printed %q", out)
	}
	var v [5]float64
	for i, j := range []int{1, 2, 3, 4, 6} {
		var err error
		if v[i], err = strconv.ParseFloat(f[j], 64); err != nil {
			return fmt.Errorf("loadgen printed %q", out)
		}
	}
	var err error
	if run.Calls, err = strconv.ParseInt(f[0], 10, 64); err != nil {
		return fmt.Errorf("loadgen printed %q", out)
	}
	run.Seconds, run.GenCPU, run.GenRunDelay, run.GenSlept, run.GenPreempted = v[0], v[1], v[2], v[3], int64(v[4])
	return nil
}

// drain waits until the reader has every record of the run's calls (a
// log reader) or the kernel's backlog and the bare loop's socket are
// empty (it says what it read only at exit), at most a minute.
func drain(ctl *source.Control, r *reader, calls int64) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if r.log != "" {
			if n, _ := r.counts(); n >= calls {
				return
			}
		} else if st, err := ctl.Status(); err == nil && st.Backlog == 0 && socketQueued(r.cmd.Process.Pid) == 0 {
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// socketQueued is the bytes waiting in the audit netlink socket of port
// pid (/proc/net/netlink's Rmem), 0 when there is none.
func socketQueued(pid int) int64 {
	b, _ := os.ReadFile("/proc/net/netlink")
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[1] == "9" && f[2] == strconv.Itoa(pid) {
			n, _ := strconv.ParseInt(f[4], 10, 64)
			return n
		}
	}
	return 0
}

// unregisterLeftover sets the audit pid back to 0 if a stopped reader
// left it set.
func unregisterLeftover(t *testing.T, ctl *source.Control) {
	st, err := ctl.Status()
	must(t, err)
	if st.PID == 0 {
		return
	}
	t.Logf("pid %d still registered after stopping; unregistering", st.PID)
	k, err := source.OpenKernel()
	must(t, err)
	defer k.Close()
	must(t, k.Unregister())
}

// countCopies reads a container's file target: the benchmark's events in
// it and the records its queue dropped, as the queue-lost notices say.
func countCopies(path string) (events, dropped int64) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		l := sc.Bytes()
		if bytes.HasSuffix(l, benchMarker[:len(benchMarker)-1]) { // the scanner cut the newline
			events++
		} else if _, v, ok := bytes.Cut(l, []byte("op=queue-lost lost=")); ok {
			n, _ := strconv.ParseInt(string(bytes.Fields(v)[0]), 10, 64)
			dropped += n
		}
	}
	return events, dropped
}
