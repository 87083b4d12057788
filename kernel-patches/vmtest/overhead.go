package main

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// benchCalls is how many audited getppid calls one measurement makes.
const benchCalls = 20000

// discard makes the audit reader count records instead of keeping them.
var discard atomic.Bool

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"overhead/measure", testOverhead})
}

// bench times n getppid calls and prints the best of three, in ns per call.
func bench(n int) {
	best := time.Duration(1 << 62)
	for round := 0; round < 3; round++ {
		start := time.Now()
		for i := 0; i < n; i++ {
			syscall.Getppid()
		}
		if d := time.Since(start); d < best {
			best = d
		}
	}
	fmt.Printf("ok bench %d ns/op\n", best.Nanoseconds()/int64(n))
}

func benchResult(t *T, lines []string) int {
	for _, l := range lines {
		var ns int
		if _, err := fmt.Sscanf(l, "ok bench %d ns/op", &ns); err == nil {
			return ns
		}
	}
	t.Errorf("no bench result in %q", lines)
	return 0
}

// testOverhead times an audited syscall loop. On the base kernel it is
// the whole run (guest argument "overhead"); vmtest.sh compares the two.
func testOverhead(t *T) {
	if daemon == nil {
		t.Skipf("not registered as the audit daemon")
	}
	a := daemon
	defer a.addRule(t, "-a always,exit -F arch=b64 -S getppid -k vmtest-bench", "", 0)()
	discard.Store(true)
	defer discard.Store(false)

	p := start(t, "/init", "helper", "bench", strconv.Itoa(benchCalls))
	fmt.Printf("INFO overhead: nocontid %d ns/op\n", benchResult(t, checkHelper(t, p)))
	if !hasContid() {
		return
	}
	p = stub(t, "/init", "helper", "bench", strconv.Itoa(benchCalls))
	wantErrno(t, "set 700", writeContid(p.pid(), "700"), nil)
	p.release(t)
	fmt.Printf("INFO overhead: contid %d ns/op\n", benchResult(t, checkHelper(t, p)))
}

// testOverheadOnly is the base kernel's run.
func testOverheadOnly(t *T) {
	var err error
	if daemon, err = startAuditd(); err != nil {
		t.Fatalf("registering: %v", err)
	}
	testOverhead(t)
}
