package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// TestIntegrationSystemdNotify runs the real daemon as systemd runs a
// Type=notify unit (configs/auditd-ns.service): with NOTIFY_SOCKET set.
// READY=1 comes only once the daemon is the registered audit daemon with
// its rules loaded and its control socket answering, STOPPING=1 on SIGTERM.
func TestIntegrationSystemdNotify(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	key := testKey("notify")
	prog := privateTrue(t, dir)
	cfg := writeConfig(t, dir, fmt.Sprintf("state_dir: %s/state\n", dir), "-D\n"+execRule(prog, key))
	notify := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	must(t, err)
	defer conn.Close()
	stderr, err := os.Create(filepath.Join(dir, "daemon.err"))
	must(t, err)
	watchRaces(t, stderr.Name())
	cmd := exec.Command(binary, "run", "--config", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	cmd.Stderr = stderr
	must(t, cmd.Start())
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	read := func(what string) string {
		t.Helper()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 4096)
		n, err := conn.Read(b)
		if err != nil {
			out, _ := os.ReadFile(stderr.Name())
			t.Fatalf("waiting for %s: %v\ndaemon stderr:\n%s", what, err, out)
		}
		return string(b[:n])
	}
	if got := read("READY=1"); got != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", got)
	}
	// At READY=1 the daemon is registered, its rules are loaded and its
	// control socket answers.
	st, err := ctl.Status()
	must(t, err)
	if int(st.PID) != cmd.Process.Pid {
		t.Errorf("at READY=1 the audit pid is %d, not the daemon's %d", st.PID, cmd.Process.Pid)
	}
	out, err := exec.Command("auditctl", "-l").CombinedOutput()
	if err != nil || !strings.Contains(string(out), key) {
		t.Errorf("at READY=1 the rules are not loaded: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "ctl", "--socket", filepath.Join(dir, "control.sock"), "status").CombinedOutput(); err != nil {
		t.Errorf("at READY=1 ctl status failed: %v\n%s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if got := read("STOPPING=1"); got != "STOPPING=1" {
		t.Errorf("on SIGTERM the notification is %q, want STOPPING=1", got)
	}
	if err := cmd.Wait(); err != nil {
		out, _ := os.ReadFile(stderr.Name())
		t.Fatalf("the daemon exited with %v\n%s", err, out)
	}
}
