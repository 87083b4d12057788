package test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// TestIntegrationExecCount runs a program N times under a rule keyed exec
// and counts the events with the real ausearch.
func TestIntegrationExecCount(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	// A private copy of true, so that no other program on the machine
	// matches the rule.
	prog := privateTrue(t, dir)
	key := testKey("exec")
	writeConfig(t, dir, "", "-D\n"+execRule(prog, key))
	d := start(t, ctl, dir)
	busyHost(t)
	const n = 25
	for range n {
		must(t, exec.Command(prog).Run())
	}
	waitKeyCount(d.log, key, n, 30*time.Second)
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != n {
		t.Errorf("ausearch -k %s found %d events, want %d", key, got, n)
	}
	out, err := exec.Command("aureport", "-if", d.log, "--summary").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Summary Report")) {
		t.Errorf("aureport --summary: %v\n%s", err, out)
	}
	checkLines(t, d.log)
	first, last := firstLast(t, d.log)
	if !strings.HasPrefix(first, "type=DAEMON_START ") || !strings.HasPrefix(last, "type=DAEMON_END ") {
		t.Errorf("log starts %q and ends %q; want DAEMON_START and DAEMON_END", first, last)
	}
	st, err := ctl.Status()
	must(t, err)
	if st.PID != 0 {
		t.Errorf("audit pid %d after a clean stop, want 0", st.PID)
	}
	if rules, _ := ctl.Rules(); len(rules) != 0 {
		t.Errorf("%d rules left after stop with rules_on_exit: delete", len(rules))
	}
}

func firstLast(t testing.TB, path string) (string, string) {
	b, err := os.ReadFile(path)
	must(t, err)
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	return l[0], l[len(l)-1]
}

// TestIntegrationRotation rotates by size and by SIGUSR1 and reads every
// file back with ausearch: no event is lost across rotations.
func TestIntegrationRotation(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	key := testKey("load")
	writeConfig(t, dir, "max_log_file: 1\nnum_logs: 10\nmax_log_file_action: rotate\n", "-D\n"+unameRule(key))
	d := start(t, ctl, dir)
	busyHost(t)
	const n = 6000 // about 2.5 MB of records: at least two rotations by size
	uname(n)
	time.Sleep(500 * time.Millisecond)
	d.signal(syscall.SIGUSR1, "rotating the log")
	uname(10)
	time.Sleep(300 * time.Millisecond)
	d.stop()
	files, _ := filepath.Glob(d.log + ".*")
	if len(files) < 3 {
		t.Fatalf("%d rotated files (%v), want at least 3: two by size, one by SIGUSR1", len(files), files)
	}
	total := ausearchCount(t, d.log, "-k", key)
	for _, f := range files {
		checkLines(t, f)
		total += ausearchCount(t, f, "-k", key)
	}
	if total != n+10 {
		t.Errorf("ausearch found %d events across %d files, want %d", total, len(files)+1, n+10)
	}
	if got := ausearchCount(t, d.log+".1", "-m", "DAEMON_ROTATE"); got != 1 {
		t.Errorf("audit.log.1 (rotated by SIGUSR1) has %d DAEMON_ROTATE events, want 1", got)
	}
}

// TestIntegrationKill9 kills the daemon under load, restarts it, and checks
// that the log holds only whole lines and the new daemon registered.
func TestIntegrationKill9(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "", "-D\n"+unameRule(testKey("load")))
	// With the daemon dead, a full backlog would hold every audited call
	// for backlog_wait_time (minutes): lose those records instead.
	b, err := os.ReadFile(cfg)
	must(t, err)
	must(t, os.WriteFile(cfg, bytes.Replace(b, []byte("backlog_wait_time: 60000"), []byte("backlog_wait_time: 0"), 1), 0o600))
	d := start(t, ctl, dir)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				uname(100)
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	must(t, d.cmd.Process.Kill())
	d.cmd.Wait()
	close(stop)
	<-done
	d2 := start(t, ctl, dir)
	st, err := ctl.Status()
	must(t, err)
	if int(st.PID) != d2.cmd.Process.Pid {
		t.Errorf("audit pid %d after restart, want the new daemon %d", st.PID, d2.cmd.Process.Pid)
	}
	uname(100)
	time.Sleep(300 * time.Millisecond)
	d2.stop()
	// The log may have been rotated (8 MB): every file holds whole lines.
	rotated, _ := filepath.Glob(d.log + ".*")
	n := 0
	for _, f := range append([]string{d.log}, rotated...) {
		n += checkLines(t, f)
	}
	if n < 1000 {
		t.Errorf("only %d lines in the log and its %d rotated files", n, len(rotated))
	}
}

// TestIntegrationStopUnderLoad stops the daemon while records pour in and
// its socket's buffer is full, so that the kernel drops records and its
// answer to the unregistration with them: the daemon must still
// unregister, exit cleanly and end its log with DAEMON_END.
func TestIntegrationStopUnderLoad(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	// No rotation: DAEMON_END is in audit.log.
	writeConfig(t, dir, "flush: incremental_async\nmax_log_file: 4096\n", "-D\n"+benchRule(t))
	d := start(t, ctl, dir)
	gen := startLoad(t, math.MaxInt)
	defer gen.kill()
	gen.run()
	time.Sleep(time.Second)
	// Stopped for a second, the daemon reads nothing: its socket fills.
	// It is told to stop while it cannot read, and goes on.
	must(t, d.cmd.Process.Signal(syscall.SIGSTOP))
	time.Sleep(time.Second)
	must(t, d.cmd.Process.Signal(syscall.SIGTERM))
	must(t, d.cmd.Process.Signal(syscall.SIGCONT))
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("auditd-ns exited with %v; stderr:\n%s", err, d.stderrText())
	}
	st, err := ctl.Status()
	must(t, err)
	if st.PID != 0 {
		t.Errorf("audit pid %d after the daemon stopped, want 0", st.PID)
	}
	log, err := os.ReadFile(d.log)
	must(t, err)
	if !bytes.Contains(log[max(0, len(log)-4096):], []byte("type=DAEMON_END ")) {
		t.Errorf("the log does not end with DAEMON_END: %q", tail(log))
	}
}

// TestIntegrationRefusesSecondDaemon starts a second daemon while one runs:
// it must refuse, naming the first one's pid and program, and leave the
// kernel as it was.
func TestIntegrationRefusesSecondDaemon(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	writeConfig(t, dir, "", "-D\n"+unameRule(testKey("first")))
	d := start(t, ctl, dir)
	dir2 := t.TempDir()
	cfg2 := writeConfig(t, dir2, "", "-D\n")
	out, err := exec.Command(binary, "run", "--config", cfg2).CombinedOutput()
	noRaces(t, "a refused run", out)
	if err == nil {
		t.Fatalf("second daemon started; output:\n%s", out)
	}
	want := fmt.Sprintf("pid %d, program auditd-ns", d.cmd.Process.Pid)
	if !bytes.Contains(out, []byte(want)) {
		t.Errorf("second daemon's error does not name the first (%q):\n%s", want, out)
	}
	st, _ := ctl.Status()
	if int(st.PID) != d.cmd.Process.Pid {
		t.Errorf("audit pid is %d, want the first daemon %d", st.PID, d.cmd.Process.Pid)
	}
	if rules, _ := ctl.Rules(); len(rules) != 1 {
		t.Errorf("%d rules loaded, want the first daemon's 1 (the second must not run -D)", len(rules))
	}
	if _, err := os.Stat(filepath.Join(dir2, "log")); err == nil {
		t.Errorf("the refused daemon created its log directory")
	}
	d.stop()
}

// TestIntegrationBadConfig checks that run refuses a bad config with
// FILE:LINE:COL errors before it touches the kernel.
func TestIntegrationBadConfig(t *testing.T) {
	ctl := testkernel.Take(t)
	before, err := ctl.Status()
	must(t, err)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "flush: sometimes\n", "-D\n-a always,exit -S nosuchcall -k x\n")
	out, err := exec.Command(binary, "run", "--config", cfg).CombinedOutput()
	noRaces(t, "a refused run", out)
	if err == nil {
		t.Fatalf("run accepted a bad config:\n%s", out)
	}
	src, _ := os.ReadFile(cfg)
	line := 1 + bytes.Count(src[:bytes.Index(src, []byte("flush: sometimes"))], []byte("\n"))
	if want := fmt.Sprintf("%s:%d:8: flush: \"sometimes\" is not one of", cfg, line); !bytes.Contains(out, []byte(want)) {
		t.Errorf("run's error lacks %q:\n%s", want, out)
	}
	after, _ := ctl.Status()
	if after.PID != 0 || after.Enabled != before.Enabled {
		t.Errorf("kernel changed by a refused run: pid %d enabled %d (was %d)", after.PID, after.Enabled, before.Enabled)
	}
	// The rules file is checked too, once the config is right.
	writeConfig(t, dir, "", "-D\n-a always,exit -S nosuchcall -k x\n")
	out, _ = exec.Command(binary, "check", "--config", cfg).CombinedOutput()
	if want := filepath.Join(dir, "audit.rules") + ":2:1: "; !bytes.Contains(out, []byte(want)) || !bytes.Contains(out, []byte("nosuchcall")) {
		t.Errorf("check's error lacks %q and the syscall name:\n%s", want, out)
	}
}

// TestIntegrationReload changes the rules file and sends SIGHUP.
func TestIntegrationReload(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	writeConfig(t, dir, "", "-D\n"+unameRule(testKey("before")))
	d := start(t, ctl, dir)
	writeConfig(t, dir, "", "-D\n"+unameRule(testKey("after"))+"-a always,exit -F arch=b64 -S getppid -F pid=1 -k second\n")
	d.signal(syscall.SIGHUP, "reloaded the config")
	rules, err := ctl.Rules()
	must(t, err)
	if len(rules) != 2 || !bytes.Contains(rules[0], []byte("after")) {
		t.Errorf("after SIGHUP the kernel has %d rules (first %q), want the new 2", len(rules), rules)
	}
	// A broken file on reload keeps the running configuration.
	writeConfig(t, dir, "flush: never\n", "-D\n")
	d.signal(syscall.SIGHUP, "keeping the running configuration")
	if rules, _ := ctl.Rules(); len(rules) != 2 {
		t.Errorf("a bad reload changed the rules: %d loaded", len(rules))
	}
	d.stop()
}

// TestIntegrationLost makes the kernel lose records (the daemon is stopped,
// the backlog is tiny) and checks that the daemon reports it in the log.
func TestIntegrationLost(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "", "-D\n"+unameRule(testKey("lost")))
	// A backlog of 16 with no waiting: records beyond it are lost.
	b, _ := os.ReadFile(cfg)
	b = bytes.Replace(b, []byte("backlog_limit: 8192\nbacklog_wait_time: 60000"), []byte("backlog_limit: 16\nbacklog_wait_time: 0"), 1)
	must(t, os.WriteFile(cfg, b, 0o600))
	d := start(t, ctl, dir)
	d.cmd.Process.Signal(syscall.SIGSTOP)
	uname(5000)
	d.cmd.Process.Signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, func() bool {
		b, _ := os.ReadFile(d.log)
		return bytes.Contains(b, []byte("op=kernel-lost"))
	}, "a kernel-lost record in the host log")
	d.stop()
	if !strings.Contains(d.stderrText(), "the kernel lost audit records") {
		t.Errorf("no log line about lost records:\n%s", d.stderrText())
	}
}

// TestIntegrationBadContainerFile: a bad container file fails run (and
// check) before the kernel is touched, naming the file, line and column.
func TestIntegrationBadContainerFile(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	containerFile(t, dir, "web", "name: web\nid: 7\ndeliver: {file: relative.log}\n")
	cfg := writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\n", dir), "-D\n-a always,exit -F arch=b64 -S execve -k x\n")
	out, err := exec.Command(binary, "run", "--config", cfg).CombinedOutput()
	noRaces(t, "a refused run", out)
	if want := filepath.Join(dir, "containers", "web.yaml") + `:3:17: deliver.file "relative.log" must be an absolute path`; err == nil || !bytes.Contains(out, []byte(want)) {
		t.Errorf("run with a bad container file: %v\n%s\nwant %s", err, out, want)
	}
	if st, _ := ctl.Status(); st.PID != 0 {
		t.Errorf("audit pid %d after a refused run", st.PID)
	}
	if rules, _ := ctl.Rules(); len(rules) != 0 {
		t.Errorf("%d rules loaded by a refused run", len(rules))
	}
}
