package main

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Calls per round: the guest clock may tick in jiffies, so many.
const (
	filteredCalls = 100000
	recordedCalls = 3000
	netnsCalls    = 2000
)

// discard makes the audit reader count records instead of keeping them.
var discard atomic.Bool

// benchRounds is how many rounds bench times; the best one counts.
const benchRounds = 5

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"overhead/measure", testOverhead})
}

// bench times n getppid calls and prints the best of rounds rounds, in ns
// per call. A round ends once kauditd, the kernel thread that sends the
// records to the reader's socket, has sent them all (it sleeps only with
// its queue empty): until then the loop yields to it, so that all of its
// work for the round's records is in the round, not a share that depends
// on when the guest's one CPU switched to it (that share moved the
// recorded figures by up to 1.9% between boots).
func bench(n, rounds int) {
	stat, err := openKauditdStat()
	if err != nil {
		fmt.Printf("bad kauditd: %v\n", err)
		return
	}
	defer unix.Close(stat)
	best := time.Duration(1 << 62)
	for round := 0; round < rounds; round++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			syscall.Getppid()
		}
		for !kauditdAsleep(stat) {
			_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0) // kauditd runs
		}
		if d := time.Since(start); d < best {
			best = d
		}
	}
	fmt.Printf("ok bench %.2f ns/op\n", float64(best.Nanoseconds())/float64(n))
}

// openKauditdStat opens /proc/PID/stat of kauditd.
func openKauditdStat() (int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1, err
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && string(comm) == "kauditd\n" {
			return unix.Open("/proc/"+e.Name()+"/stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		}
	}
	return -1, fmt.Errorf("no kauditd in /proc")
}

// kauditdAsleep says whether kauditd is sleeping (state S): it sleeps
// when its queue is empty, and wakes as soon as a record is queued.
func kauditdAsleep(stat int) bool {
	var buf [512]byte
	n, err := unix.Pread(stat, buf[:], 0)
	if err != nil || n <= 0 {
		return true
	}
	i := bytes.LastIndexByte(buf[:n], ')')
	return i < 0 || i+2 >= n || buf[i+2] == 'S'
}

// deepBench is the helper role "deep-bench D MAX BASE N": like deep (see
// limits.go), a chain of nested containers BASE, BASE+1, ... but MAX deep
// and no deeper, whose innermost task times N getppid calls (one round):
// the recorded figure with the longest chain there is.
func (h *helper) deepBench(d, max, base, n int) {
	h.contidIs(os.Getpid(), strconv.Itoa(base+d-1))
	if d == max {
		bench(n, 1)
		return
	}
	cmd, in := h.startHeld(d+1, "deep-bench", strconv.Itoa(d+1), strconv.Itoa(max), strconv.Itoa(base), strconv.Itoa(n))
	if cmd == nil {
		return
	}
	next := strconv.Itoa(base + d)
	h.expect(fmt.Sprintf("nest %s at depth %d", next, d+1), writeContid(cmd.Process.Pid, next), "success")
	h.release(d+1, cmd, in)
}

// benchNetns times n unshare(CLONE_NEWNET) calls, each of which creates a
// network namespace and drops the previous one (freed by a worker, on the
// guest's one CPU, so its cost lands in the loop too), in ns per call.
// ENOSPC (max_net_namespaces while frees lag) is waited out.
func benchNetns(n int) {
	runtime.LockOSThread() // the thread dies with its namespace on exit
	start := time.Now()
	for i := 0; i < n; i++ {
		for {
			err := unix.Unshare(unix.CLONE_NEWNET)
			if err == nil {
				break
			}
			if err != unix.ENOSPC {
				fmt.Printf("bad unshare %d: %v\n", i, err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	fmt.Printf("ok bench %.2f ns/op\n", float64(time.Since(start).Nanoseconds())/float64(n))
}

func benchResult(t *T, lines []string) float64 {
	for _, l := range lines {
		var ns float64
		if _, err := fmt.Sscanf(l, "ok bench %f ns/op", &ns); err == nil {
			return ns
		}
	}
	t.Errorf("no bench result in %q", lines)
	return 0
}

// benchIn runs the loop in a new task, in container contid if not empty,
// rounds rounds in that task. A contid "deepN" puts the task at the end
// of a chain of contidDepth nested containers N, N+1, ... (one round).
func benchIn(t *T, contid string, calls, rounds int) float64 {
	argv := []string{"/init", "helper", "bench", strconv.Itoa(calls), strconv.Itoa(rounds)}
	if contid == "" {
		return benchResult(t, checkHelper(t, start(t, argv...)))
	}
	if base, ok := strings.CutPrefix(contid, "deep"); ok {
		argv = []string{"/init", "helper", "deep-bench", "1", itoa(contidDepth), base, strconv.Itoa(calls)}
		contid = base
	}
	p := stub(t, argv...)
	wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
	p.release(t)
	return benchResult(t, checkHelper(t, p))
}

// benchRecorded times a loop whose every call is recorded, without the
// in-guest reader's work: each of benchRounds rounds is a task of its
// own, run while the reader is paused (the records wait in the socket
// buffer and, past it, in the kernel's queue under a large backlog
// limit), and the reader drains them after the task is gone. The
// reader's time is measured apart: from the end of the round to its
// last record, per record. Returns the best round's ns per call.
func benchRecorded(t *T, a *auditd, who, contid string) float64 {
	best := 0.0
	var recs, readNs int64
	lost := a.lost.Load()
	for round := 0; round < benchRounds; round++ {
		c0 := a.quiet()
		a.pause()
		id := contid
		if base, ok := strings.CutPrefix(contid, "deep"); ok {
			// new containers each round: the last ones are dropped
			n, _ := strconv.Atoi(base)
			id = "deep" + strconv.Itoa(n+10*round)
		}
		ns := benchIn(t, id, recordedCalls, 1)
		end := time.Now().UnixNano()
		a.resume()
		n := a.quiet() - c0
		if round == 0 || ns < best {
			best = ns
		}
		if n > 0 {
			recs += n
			readNs += a.last.Load() - end
		}
	}
	if l := a.lost.Load() - lost; l > 0 {
		t.Errorf("recorded %s: the reader's socket overflowed %d times: records were lost", who, l)
	}
	if recs == 0 {
		t.Errorf("recorded %s: no records read", who)
		return best
	}
	fmt.Printf("INFO overhead-reader: recorded %s %.3f records/call, read afterwards in %.2f ns/record\n",
		who, float64(recs)/float64(benchRounds*recordedCalls), float64(readNs)/float64(recs))
	return best
}

// testOverhead times getppid under two rules: one evaluated on every call
// that never matches ("filtered", the cost every audited syscall pays) and
// one that logs every call ("recorded"). On the base kernel this is the
// whole run (guest argument "overhead"); vmtest.sh compares the two.
func testOverhead(t *T) {
	if daemon == nil {
		t.Skipf("not registered as the audit daemon")
	}
	a := daemon
	discard.Store(true)
	defer discard.Store(false)
	// A paused reader's records wait in the kernel's queue once the
	// socket buffer is full: no backlog wait, no loss.
	if err := a.setBacklogLimit(1 << 20); err != nil {
		t.Fatalf("%v", err)
	}
	defer func() {
		if err := a.setBacklogLimit(8192); err != nil {
			t.Errorf("%v", err)
		}
	}()

	del := a.addRule(t, "-a always,exit -F arch=b64 -S getppid -F uid=4242 -k vmtest-bench", "", 0)
	fmt.Printf("INFO overhead: filtered nocontid %.2f ns/op\n", benchIn(t, "", filteredCalls, benchRounds))
	if hasContid() {
		fmt.Printf("INFO overhead: filtered contid %.2f ns/op\n", benchIn(t, "700", filteredCalls, benchRounds))
	}
	del()

	del = a.addRule(t, "-a always,exit -F arch=b64 -S getppid -k vmtest-bench", "", 0)
	fmt.Printf("INFO overhead: recorded nocontid %.2f ns/op\n", benchRecorded(t, a, "nocontid", ""))
	if hasContid() {
		fmt.Printf("INFO overhead: recorded contid %.2f ns/op\n", benchRecorded(t, a, "contid", "700"))
		// the longest chain: 8 contids, "957,^956,...,^950"
		fmt.Printf("INFO overhead: recorded contid8 %.2f ns/op\n", benchRecorded(t, a, "contid8", "deep950"))
	}
	del()
}

// testOverheadNetns times network namespace creation and destruction,
// each logged by patch 9 (create, change and destroy records). It takes
// about a minute under TCG, so only the dedicated overhead boots run it.
func testOverheadNetns(t *T) {
	ns := benchResult(t, checkHelper(t, start(t, "/init", "helper", "netns-bench", strconv.Itoa(netnsCalls))))
	fmt.Printf("INFO overhead: netns nocontid %.2f ns/op\n", ns)
}

// testOverheadOnly is the base kernel's run.
func testOverheadOnly(t *T) {
	var err error
	if daemon, err = startAuditd(); err != nil {
		t.Fatalf("registering: %v", err)
	}
	testOverhead(t)
	testOverheadNetns(t)
}
