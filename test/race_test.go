package test

import (
	"bytes"
	"os"
	"testing"
)

// raceBuild says whether TestMain builds the daemon with the race
// detector: AUDITD_NS_RACE=1 (make gotest sets it). Such a daemon writes a
// report to its stderr for every data race it runs into, goes on, and
// exits with status 66; watchRaces and noRaces fail the test on a report.
func raceBuild() bool { return os.Getenv("AUDITD_NS_RACE") == "1" }

// raceWarning opens each report of the race detector.
var raceWarning = []byte("WARNING: DATA RACE")

// watchRaces fails t when it ends if the file path, where an auditd-ns the
// test started writes its stderr, holds a race report. Call it before
// starting the process: cleanups run last first, so the check runs after
// the process is stopped and its reports are all written.
func watchRaces(t testing.TB, path string) {
	t.Helper()
	t.Cleanup(func() {
		b, _ := os.ReadFile(path)
		noRaces(t, path, b)
	})
}

// noRaces fails t if out, the output of an auditd-ns the test ran, holds a
// race report; what names where out came from. The error quotes the first
// reports: they name both goroutines' stacks.
func noRaces(t testing.TB, what string, out []byte) {
	t.Helper()
	n := bytes.Count(out, raceWarning)
	if n == 0 {
		return
	}
	first := out[bytes.Index(out, raceWarning):]
	if len(first) > 8000 {
		first = first[:8000]
	}
	t.Errorf("the race detector found %d data races in auditd-ns (%s); the first:\n%s", n, what, first)
}
