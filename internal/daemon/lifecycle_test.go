package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/internal/leaktest"
)

// project is the prefix of the project's functions, for leaktest.
const project = "github.com/auditd-ns/auditd-ns/"

// TestRunLeavesNoGoroutine runs the daemon (listener mode: no kernel) with
// a container registered, a control client connected and a peer sending,
// and stops it: when Run returns, no goroutine of the daemon's is left.
// Goroutines that have done their work may take a moment to be gone from
// the runtime's list; one still in the project's code a second later is a
// leak.
func TestRunLeavesNoGoroutine(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "containers"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "containers", "web.yaml"), []byte(fmt.Sprintf("name: web\nid: 42\ndeliver: {file: %s/web/audit.log}\n", dir)), 0o600))
	path := filepath.Join(dir, "auditd-ns.yaml")
	must(os.WriteFile(path, []byte(fmt.Sprintf("local_events: no\nlisten: {address: %q}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\ncontainers_dir: %s/containers\n",
		addr, dir, dir, dir, dir)), 0o600))
	cfg, err := config.Load(path)
	must(err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, nil, hclog.NewNullLogger()) }()
	var peer, ctl net.Conn
	for end := time.Now().Add(10 * time.Second); peer == nil || ctl == nil; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the daemon did not listen in 10s")
		}
		if peer == nil {
			peer, _ = net.Dial("tcp", addr)
		}
		if ctl == nil {
			ctl, _ = net.Dial("unix", filepath.Join(dir, "control.sock"))
		}
	}
	defer peer.Close()
	defer ctl.Close()
	if n := len(leaktest.Goroutines(project)); n < 5 {
		t.Fatalf("%d goroutines of the daemon seen while it runs: the check would see no leak", n)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30s after its context ended")
	}
	if gs := leaktest.Left(time.Second, project); len(gs) > 0 {
		t.Errorf("%d goroutines left after Run returned:\n%s", len(gs), strings.Join(gs, "\n\n"))
	}
}
