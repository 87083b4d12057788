package daemon

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// niceOf returns the nice value of every thread of this process.
func niceOf(t *testing.T) map[int]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]int{}
	for _, e := range ents {
		tid, _ := strconv.Atoi(e.Name())
		if raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil {
			m[tid] = 20 - raw
		}
	}
	return m
}

// priority_boost raises every thread of the daemon, not only the one that
// happens to apply it, and by n from where each was.
func TestBoostRaisesEveryThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("raising priority needs root")
	}
	before := niceOf(t)
	if len(before) < 2 {
		t.Skipf("only %d thread", len(before))
	}
	t.Cleanup(func() {
		for tid, nice := range before {
			unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
		}
		for tid := range niceOf(t) {
			if _, ok := before[tid]; !ok {
				unix.Setpriority(unix.PRIO_PROCESS, tid, before[os.Getpid()])
			}
		}
	})
	if err := boostThreads(3); err != nil {
		t.Fatal(err)
	}
	after := niceOf(t)
	for tid, nice := range before {
		if got, ok := after[tid]; ok && got != max(nice-3, -20) {
			t.Errorf("thread %d: nice %d after a boost of 3, want %d", tid, got, max(nice-3, -20))
		}
	}
}
