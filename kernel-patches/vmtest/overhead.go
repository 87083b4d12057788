package main

import (
	"fmt"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Calls per round: the guest clock may tick in jiffies, so many.
const (
	filteredCalls = 100000
	recordedCalls = 3000
	netnsCalls    = 10000
)

// discard makes the audit reader count records instead of keeping them.
var discard atomic.Bool

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"overhead/measure", testOverhead})
}

// bench times n getppid calls and prints the best of five rounds, in ns
// per call.
func bench(n int) {
	best := time.Duration(1 << 62)
	for round := 0; round < 5; round++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			syscall.Getppid()
		}
		if d := time.Since(start); d < best {
			best = d
		}
	}
	fmt.Printf("ok bench %.2f ns/op\n", float64(best.Nanoseconds())/float64(n))
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

// benchIn runs the loop in a new task, in container contid if not empty.
func benchIn(t *T, contid string, calls int) float64 {
	n := strconv.Itoa(calls)
	if contid == "" {
		return benchResult(t, checkHelper(t, start(t, "/init", "helper", "bench", n)))
	}
	p := stub(t, "/init", "helper", "bench", n)
	wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
	p.release(t)
	return benchResult(t, checkHelper(t, p))
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
	for _, c := range []struct {
		name, rule string
		calls      int
	}{
		{"filtered", "-a always,exit -F arch=b64 -S getppid -F uid=4242 -k vmtest-bench", filteredCalls},
		{"recorded", "-a always,exit -F arch=b64 -S getppid -k vmtest-bench", recordedCalls},
	} {
		del := a.addRule(t, c.rule, "", 0)
		fmt.Printf("INFO overhead: %s nocontid %.2f ns/op\n", c.name, benchIn(t, "", c.calls))
		if hasContid() {
			fmt.Printf("INFO overhead: %s contid %.2f ns/op\n", c.name, benchIn(t, "700", c.calls))
		}
		del()
	}
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
