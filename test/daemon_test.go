package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/source"
)

var binary string // the auditd-ns binary built by TestMain

func TestMain(m *testing.M) {
	if os.Getenv("AUDITD_NS_UNAME") != "" {
		// The load generator of BenchmarkKernelPath: a build here would
		// run inside the measured interval.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "auditd-ns-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "auditd-ns")
	args := []string{"build", "-o", binary}
	if raceBuild() {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "../cmd/auditd-ns")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building auditd-ns: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	unmountHugetlbV1()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is one auditd-ns run started by a test.
type daemon struct {
	t      testing.TB
	dir    string
	log    string
	cfg    string
	cmd    *exec.Cmd
	stderr *os.File
}

// writeConfig writes a config and rules file into dir. extra is appended
// to the config (it may set lost_check_interval, 200ms otherwise); rules
// is the audit.rules text.
func writeConfig(t testing.TB, dir, extra, rules string) string {
	t.Helper()
	cfg := fmt.Sprintf("log_file: %s/log/audit.log\naudit_rules: %s/audit.rules\nrules_on_exit: delete\nbacklog_limit: 8192\nbacklog_wait_time: 60000\nlog_level: debug\ncontrol_socket: %s/control.sock\n%s", dir, dir, dir, extra)
	if !strings.Contains(extra, "lost_check_interval:") {
		cfg += "lost_check_interval: 200ms\n"
	}
	must(t, os.WriteFile(filepath.Join(dir, "auditd-ns.yaml"), []byte(cfg), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "audit.rules"), []byte(rules), 0o600))
	return filepath.Join(dir, "auditd-ns.yaml")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs auditd-ns with the config in dir and waits until it is the
// registered audit daemon with its rules loaded.
func start(t testing.TB, ctl *source.Control, dir string) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: dir, log: filepath.Join(dir, "log", "audit.log"), cfg: filepath.Join(dir, "auditd-ns.yaml")}
	var err error
	d.stderr, err = os.Create(filepath.Join(dir, fmt.Sprintf("daemon-%d.err", time.Now().UnixNano())))
	must(t, err)
	watchRaces(t, d.stderr.Name())
	d.cmd = exec.Command(binary, "run", "--config", d.cfg)
	d.cmd.Stderr = d.stderr
	must(t, d.cmd.Start())
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st, err := ctl.Status()
		must(t, err)
		if int(st.PID) == d.cmd.Process.Pid && strings.Contains(d.stderrText(), "containers started") {
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("auditd-ns did not register in 10s; its stderr:\n%s", d.stderrText())
	return nil
}

func (d *daemon) stderrText() string {
	b, _ := os.ReadFile(d.stderr.Name())
	return string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		d.t.Fatalf("auditd-ns exited with %v; stderr:\n%s", err, d.stderrText())
	}
}

// signal sends sig and waits until the daemon's stderr contains want.
func (d *daemon) signal(sig syscall.Signal, want string) {
	d.t.Helper()
	before := strings.Count(d.stderrText(), want)
	d.cmd.Process.Signal(sig)
	waitFor(d.t, 10*time.Second, func() bool { return strings.Count(d.stderrText(), want) > before }, "daemon to log "+want)
}

func waitFor(t testing.TB, d time.Duration, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// uname makes n audited syscalls from this process (rules select them with
// -F pid=os.Getpid() -S uname).
func uname(n int) {
	var u syscall.Utsname
	for range n {
		syscall.Uname(&u)
	}
}

// unameRule selects uname(2) of this process only and tags it with key
// (from testKey).
func unameRule(key string) string {
	return fmt.Sprintf("-a always,exit -F arch=b64 -S uname -F pid=%d -k %s\n", os.Getpid(), key)
}

// execRule selects the executions of prog only (a private copy from
// privateTrue, which nothing else on the machine runs) and tags them with
// key (from testKey).
func execRule(prog, key string) string {
	return fmt.Sprintf("-a always,exit -F arch=b64 -S execve -F exe=%s -k %s\n", prog, key)
}

var keySeq atomic.Int64

// testKey is a rule key that only the rules of the calling test carry:
// what, this process's pid and a number that no other call returns. A
// test loads its rules with it, filtered to its own workload (its own
// program or pid), and counts only events with it: records that other
// processes on the machine cause, a compile beside the test or the noise
// of busyHost, never carry it.
func testKey(what string) string {
	return fmt.Sprintf("%s-%d-%d", what, os.Getpid(), keySeq.Add(1))
}

// privateTrue copies /bin/true into dir, so that a rule on its exe selects
// this test's executions and no one else's.
func privateTrue(t testing.TB, dir string) string {
	t.Helper()
	return privateCopy(t, dir, "/bin/true", "true-for-test")
}

// busyHost runs, until the test ends, what a busy host runs beside it: a
// child of this test (same uid, login uid, session and cgroup) that
// executes /bin/true and uname(1) in a loop, as a compile beside the test
// does. A test that counts records must count the same with it: its rules
// and counts select its own workload (testKey, execRule, unameRule), not
// everything that executes or calls uname. Set AUDITD_NS_QUIET=1 to leave it out.
func busyHost(t testing.TB) {
	t.Helper()
	if os.Getenv("AUDITD_NS_QUIET") == "1" {
		return
	}
	cmd := exec.Command("/bin/sh", "-c", "while :; do /bin/true; uname >/dev/null; done")
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

var lineRE = regexp.MustCompile(`^(node=\S+ )?type=[A-Z_0-9\[\]]+ msg=audit\(\d+\.\d{3}:\d+\): `)

// checkLines fails on any line of path that is not a whole auditd record line.
func checkLines(t testing.TB, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s ends in a torn line: %q", path, tail(b))
	}
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		n++
		if !lineRE.MatchString(sc.Text()) {
			t.Errorf("%s:%d: not an audit record line: %q", path, n, sc.Text())
		}
	}
	return n
}

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}

// ausearchCount runs the real ausearch on a file and counts the events it
// finds (the "----" separators).
func ausearchCount(t testing.TB, file string, args ...string) int {
	t.Helper()
	cmd := exec.Command("ausearch", append([]string{"-if", file}, args...)...)
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 && len(out) == 0 {
		return 0 // ausearch exits 1 when nothing matches
	}
	if err != nil {
		t.Fatalf("ausearch %v: %v\n%s", args, err, out)
	}
	n := 0
	for _, l := range strings.Split(string(out), "\n") {
		if l == "----" {
			n++
		}
	}
	return n
}

func needTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ausearch", "aureport"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian package auditd): %v", tool, err)
		}
	}
}
