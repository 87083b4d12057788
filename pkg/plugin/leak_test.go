package plugin

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/internal/leaktest"
)

// goroutines returns the stacks of the goroutines that run this package's
// code, but for the tests' own, and those that have done their work and
// only return: Runner.goroutine's, once its WaitGroup is told.
func goroutines() []string {
	return leaktest.Goroutines("auditd-ns/pkg/plugin.", "auditd-ns/pkg/plugin.(*Runner).goroutine")
}

// TestMain fails the package when a goroutine of it outlives the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if gs := goroutines(); code == 0 && len(gs) > 0 {
		fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", strings.Join(gs, "\n\n"))
		code = 1
	}
	os.Exit(code)
}

// Stop returns when every goroutine the Runner started has ended: the
// plugins', their programs' waits, an af_unix accept loop with a reader
// connected, those of plugins a Reload started and stopped, and with
// overflow_action halt. Checked at once, without waiting.
func TestStopEndsEveryGoroutine(t *testing.T) {
	for round := range 20 {
		a := script(t, `exec cat >"$1/out"`)
		b := script(t, `exec cat >/dev/null`)
		b.Name = "b.conf"
		sock := filepath.Join(t.TempDir(), "events")
		u := &Conf{Name: "af_unix.conf", Active: true, Path: BuiltinAFUnix, Socket: sock}
		halts := 0
		o := opts(4, OverflowHalt)
		o.Halt = func(string) { halts++ }
		r := Start([]*Conf{a, b, u}, o)
		waitFor(t, "the socket", func() bool { _, err := os.Stat(sock); return err == nil })
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			r.Submit(1300, []byte(fmt.Sprintf("audit(1.002:%d): x", i)))
		}
		r.Reload([]*Conf{a, u}, OverflowHalt, 2)
		if err := r.Stop(); err != nil {
			t.Errorf("Stop: %v", err)
		}
		if gs := goroutines(); len(gs) > 0 {
			t.Fatalf("round %d: %d goroutines left after Stop:\n%s", round, len(gs), strings.Join(gs, "\n\n"))
		}
		conn.Close()
		if _, err := os.Stat(sock); !os.IsNotExist(err) {
			t.Errorf("the socket is still there after Stop: %v", err)
		}
		if halts == 0 || halts > 3 {
			t.Errorf("Halt called %d times, want at least once and at most once per plugin", halts)
		}
	}
}
