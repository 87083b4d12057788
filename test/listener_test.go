package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
)

// TestIntegrationAudispRemoteToDaemon runs auditd-ns in listener mode and
// the real audisp-remote sending to it: every record lands in the daemon's
// log, in order, and ausearch reads it. It does not touch the kernel's
// audit state (the daemon's source is the listener).
func TestIntegrationAudispRemoteToDaemon(t *testing.T) {
	needTools(t)
	remote, err := exec.LookPath("audisp-remote")
	if err != nil {
		for _, p := range []string{"/sbin/audisp-remote", "/usr/sbin/audisp-remote"} {
			if _, serr := os.Stat(p); serr == nil {
				remote, err = p, nil
			}
		}
	}
	if err != nil {
		t.Skip("needs audisp-remote (Debian package audispd-plugins)")
	}
	if _, err := os.Stat("/etc/audit/audisp-remote.conf"); err != nil {
		t.Skipf("no /etc/audit/audisp-remote.conf to bind-mount a private config over: %v", err)
	}
	dir := t.TempDir()
	p := port(t)
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf("local_events: no\nlisten: {address: 127.0.0.1:%d}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\n", p, dir, dir, dir)), 0o600))
	d := exec.Command(binary, "run", "--config", cfg)
	derr, _ := os.Create(filepath.Join(dir, "stderr"))
	d.Stderr = derr
	watchRaces(t, derr.Name())
	must(t, d.Start())
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))

	const n = 2000
	var in bytes.Buffer
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&in, "type=SYSCALL msg=audit(1700000000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"x\" exe=\"/x\" key=\"from-audisp\"\n", i%1000, i, 1000+i)
		fmt.Fprintf(&in, "type=EOE msg=audit(1700000000.%03d:%d): \n", i%1000, i)
	}
	conf := filepath.Join(dir, "audisp-remote.conf")
	must(t, os.WriteFile(conf, []byte(testaudit.AudispRemoteConf(p, filepath.Join(dir, "queue"), 500000)), 0o600))
	ar := testaudit.AudispRemote(context.Background(), remote, conf)
	ar.Stdin = &in
	done := make(chan []byte, 1)
	go func() { out, _ := ar.CombinedOutput(); done <- out }()
	select {
	case out := <-done:
		t.Logf("audisp-remote: %s", out)
	case <-time.After(90 * time.Second):
		ar.Process.Kill()
		t.Fatal("audisp-remote still running after 90s")
	}
	log := filepath.Join(dir, "log", "audit.log")
	var got int
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			se, _ := os.ReadFile(filepath.Join(dir, "stderr"))
			t.Logf("log head: %.600s\ndaemon: %s", b, se)
		}
	}()
	waitFor(t, 10*time.Second, func() bool { got = ausearchCount(t, log, "-k", "from-audisp"); return got == n }, fmt.Sprintf("%d events in the listener log (%d so far)", n, got))
	b, _ := os.ReadFile(log)
	if t.Failed() {
		se, _ := os.ReadFile(filepath.Join(dir, "stderr"))
		t.Logf("log head: %.500s\ndaemon: %s", b, se)
	}
	var serials []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "type=SYSCALL ") {
			serials = append(serials, l[strings.Index(l, ":")+1:strings.Index(l, "):")])
		}
	}
	for i, s := range serials {
		if s != fmt.Sprint(i+1) {
			t.Fatalf("record %d in the log has serial %s: out of order or duplicated", i+1, s)
		}
	}
}

// TestIntegrationListenerSignals: in listener mode the daemon handles
// SIGHUP (reload), SIGUSR1 (rotate) and SIGUSR2 (resume) as the host daemon
// does, rather than dying of SIGHUP's default action, and still exits
// cleanly on SIGTERM. It does not touch the kernel's audit state.
func TestIntegrationListenerSignals(t *testing.T) {
	dir := t.TempDir()
	p := port(t)
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	body := fmt.Sprintf("local_events: no\nlisten: {address: 127.0.0.1:%d}\nlog_file: %s/log/audit.log\nstate_dir: %s/state\ncontrol_socket: %s/control.sock\n", p, dir, dir, dir)
	must(t, os.WriteFile(cfg, []byte(body), 0o600))
	d := exec.Command(binary, "run", "--config", cfg)
	stderr := filepath.Join(dir, "stderr")
	derr, _ := os.Create(stderr)
	d.Stderr = derr
	watchRaces(t, stderr)
	must(t, d.Start())
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))
	says := func(what string) func() bool {
		return func() bool { b, _ := os.ReadFile(stderr); return strings.Contains(string(b), what) }
	}

	// A reload that changes the listen address keeps the running one.
	must(t, os.WriteFile(cfg, []byte(strings.Replace(body, fmt.Sprint(p), fmt.Sprint(p+1), 1)), 0o600))
	must(t, d.Process.Signal(syscall.SIGHUP))
	waitFor(t, 5*time.Second, says("reloaded the config (SIGHUP)"), "the daemon to say it reloaded")
	if !says("listen settings take effect at the next start")() {
		t.Error("no warning that the new listen address waits for a restart")
	}
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))

	must(t, d.Process.Signal(syscall.SIGUSR1))
	rotated := filepath.Join(dir, "log", "audit.log.1")
	waitFor(t, 5*time.Second, func() bool { _, err := os.Stat(rotated); return err == nil }, "audit.log.1 after SIGUSR1")
	if b, _ := os.ReadFile(rotated); !strings.Contains(string(b), "type=DAEMON_START") {
		t.Errorf("audit.log.1 does not hold the log written before the rotation: %q", b)
	}
	must(t, d.Process.Signal(syscall.SIGUSR2))
	waitFor(t, 5*time.Second, says("resuming logging (SIGUSR2)"), "the daemon to say it resumed")

	must(t, d.Process.Signal(syscall.SIGTERM))
	if err := d.Wait(); err != nil {
		b, _ := os.ReadFile(stderr)
		t.Fatalf("auditd-ns exited with %v after the signals; stderr:\n%s", err, b)
	}
}
