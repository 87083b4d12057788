package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
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

// TestIntegrationReloadUnderControl reloads a daemon (SIGHUP) again and
// again while a control client lists, registers and unregisters
// containers and reads the status, all of which read the running
// configuration that a reload replaces. Built with AUDITD_NS_RACE=1, the
// daemon reports any access the two share unsynchronised, and the test
// fails. It runs in listener mode: the kernel's audit state is untouched.
func TestIntegrationReloadUnderControl(t *testing.T) {
	dir := t.TempDir()
	p := port(t)
	sock := filepath.Join(dir, "control.sock")
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("local_events: no\nlisten: {address: 127.0.0.1:%d}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s\n", p, dir, dir, sock)), 0o600))
	stderr := filepath.Join(dir, "stderr")
	errf, err := os.Create(stderr)
	must(t, err)
	d := exec.Command(binary, "run", "--config", cfg)
	d.Stderr = errf
	watchRaces(t, stderr)
	must(t, d.Start())
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var c *control.Client
	waitFor(t, 10*time.Second, func() bool { c, err = control.Dial(ctx, sock); return err == nil }, "the control socket")
	defer c.Close()

	web := fmt.Appendf(nil, "name: web\nid: 7\ndeliver: {file: %s/web/audit.log}\nqueue: {memory: 64KiB}\n", dir)
	var calls atomic.Int64
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			_, err0 := c.Register(ctx, "web.yaml", web, false)
			_, err1 := c.Status(ctx)
			_, err2 := c.Containers(ctx)
			_, err3 := c.Unregister(ctx, "web", control.ModeSpool, 0)
			if err := errors.Join(err0, err1, err2, err3); err != nil {
				if ctx.Err() != nil {
					break // cut short by the end of the test
				}
				done <- err
				return
			}
			calls.Add(1)
		}
		done <- nil
	}()
	const reloads = 20
	for range reloads {
		before := strings.Count(readFile(stderr), "reloaded the config")
		must(t, d.Process.Signal(syscall.SIGHUP))
		waitFor(t, 10*time.Second, func() bool { return strings.Count(readFile(stderr), "reloaded the config") > before }, "a reload")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("control calls during the reloads: %v", err)
	}
	if calls.Load() == 0 {
		t.Errorf("no control call completed during %d reloads", reloads)
	}
	must(t, d.Process.Signal(syscall.SIGTERM))
	if err := d.Wait(); err != nil {
		t.Errorf("auditd-ns exited with %v; stderr:\n%s", err, readFile(stderr))
	}
	t.Logf("%d rounds of register, status, containers and unregister during %d reloads", calls.Load(), reloads)
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}
