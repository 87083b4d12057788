package test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/internal/testkernel"
	"github.com/auditd-ns/auditd-ns/pkg/control"
)

// pluginRun is an auditd-ns started from an auditd.conf with plugins.
type pluginRun struct {
	cmd    *exec.Cmd
	dir    string
	stderr string
}

func (r *pluginRun) text() string { b, _ := os.ReadFile(r.stderr); return string(b) }

// status reads the daemon's status through its control socket (JSON).
func (r *pluginRun) status(t *testing.T) control.Status {
	t.Helper()
	out, err := ctl(t, r.dir, "status", "--json")
	if err != nil {
		t.Fatalf("ctl status: %v\n%s", err, out)
	}
	var st control.Status
	must(t, json.Unmarshal([]byte(out), &st))
	return st
}

func (r *pluginRun) plugin(t *testing.T, name string) control.PluginStatus {
	t.Helper()
	for _, p := range r.status(t).Plugins {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no plugin %s in the status", name)
	return control.PluginStatus{}
}

// startPluginDaemon runs auditd-ns with dir/auditd.conf (the auditd.conf
// text conf, with an auditd-ns.yaml beside it for the test's rules and
// control socket) in a private mount namespace, where /dev is a small
// tmpfs whose /dev/log is syslogSock (so that audisp-syslog's records
// reach the test, not the host's syslog) and, when remoteConf is set,
// /etc/audit/audisp-remote.conf is remoteConf (audisp-remote 3.0.9 reads
// no other file). The host's files are untouched.
func startPluginDaemon(t *testing.T, kernelPID func() (uint32, error), dir, conf, rules, remoteConf, syslogSock string) *pluginRun {
	t.Helper()
	side := fmt.Sprintf("audit_rules: audit.rules\nrules_on_exit: delete\nbacklog_limit: 8192\nbacklog_wait_time: 60000\n"+
		"log_level: debug\ncontrol_socket: %s/control.sock\nlost_check_interval: 200ms\n", dir)
	must(t, os.WriteFile(filepath.Join(dir, "auditd-ns.yaml"), []byte(side), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "audit.rules"), []byte(rules), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o640))
	script := `set -e
if [ -n "$3" ]; then mount --bind "$3" /etc/audit/audisp-remote.conf; fi
mount -t tmpfs -o mode=755 tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 444 /dev/random c 1 8
mknod -m 444 /dev/urandom c 1 9
ln -s "$4" /dev/log
exec "$1" run --config "$2"`
	r := &pluginRun{dir: dir, stderr: filepath.Join(dir, "daemon.err")}
	errf, err := os.Create(r.stderr)
	must(t, err)
	watchRaces(t, r.stderr)
	r.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
		binary, filepath.Join(dir, "auditd.conf"), remoteConf, syslogSock)
	r.cmd.Stdout, r.cmd.Stderr = errf, errf
	must(t, r.cmd.Start())
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	waitFor(t, 15*time.Second, func() bool {
		pid, err := kernelPID()
		return err == nil && int(pid) == r.cmd.Process.Pid && strings.Contains(r.text(), "containers started")
	}, "the daemon to register")
	return r
}

// stop ends the daemon with SIGTERM and checks it exits cleanly.
func (r *pluginRun) stop(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGTERM)
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("auditd-ns exited with %v; stderr:\n%s", err, r.text())
	}
}

// pluginAuditdConf is an auditd.conf for the plugin tests: RAW log in dir,
// no name, plugins from dir/plugins.d, and the extra lines.
func pluginAuditdConf(dir, extra string) string {
	return fmt.Sprintf("local_events = yes\nwrite_logs = yes\nlog_file = %s/log/audit.log\nlog_format = RAW\nflush = INCREMENTAL_ASYNC\n"+
		"freq = 50\nmax_log_file = 100\nnum_logs = 2\nmax_log_file_action = ROTATE\nname_format = NONE\npriority_boost = 0\n"+
		"space_left = 1\nspace_left_action = IGNORE\nadmin_space_left = 1\nadmin_space_left_action = IGNORE\n"+
		"disk_full_action = IGNORE\ndisk_error_action = IGNORE\nplugin_dir = %s/plugins.d\n%s", dir, dir, extra)
}

// vethTo gives network namespace ns the address 10.213.7.2 on a veth pair
// whose host end is 10.213.7.1, removed after the test.
func vethTo(t *testing.T, ns string) string {
	t.Helper()
	host, peer := "plgh0", "plgn0"
	exec.Command("ip", "link", "del", host).Run() // a leftover of a killed run
	for _, args := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", peer, "netns", filepath.Base(ns)},
		{"addr", "add", "10.213.7.1/30", "dev", host},
		{"link", "set", host, "up"},
		{"-n", filepath.Base(ns), "addr", "add", "10.213.7.2/30", "dev", peer},
		{"-n", filepath.Base(ns), "link", "set", peer, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	return "10.213.7.2"
}

// syslogSocket listens where /dev/log will point and collects the
// messages that arrive.
type syslogSocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func newSyslogSocket(t *testing.T, dir string) *syslogSocket {
	t.Helper()
	s := &syslogSocket{path: filepath.Join(dir, "syslog.sock")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: s.path, Net: "unixgram"})
	must(t, err)
	must(t, os.Chmod(s.path, 0o666))
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.msgs = append(s.msgs, string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *syslogSocket) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msgs {
		if strings.Contains(m, sub) {
			n++
		}
	}
	return n
}

// lineReader reads the lines of a stream (the af_unix plugin's socket).
type lineReader struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineReader) read(c net.Conn) {
	sc := bufio.NewScanner(c)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lineReader) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

func countWith(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func fileCount(path, sub string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), sub)
}

// TestIntegrationPlugins runs auditd-ns from an auditd.conf whose
// plugin_dir holds Debian's own plugin files, turned on: the real
// audisp-remote sends to a real auditd listening in a network namespace,
// the real audisp-syslog writes to syslog (a socket of the test's, in the
// daemon's private mount namespace), the builtin af_unix serves a reader,
// and the real LAUREL writes its JSON. Each gets every record of the
// test's events; a plugin file in a format auditd-ns refuses is named as
// FILE:LINE and the daemon runs on without it.
func TestIntegrationPlugins(t *testing.T) {
	needTools(t)
	for _, p := range []string{"/sbin/audisp-remote", "/sbin/audisp-syslog", "/usr/sbin/laurel", "unshare"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("needs %s (Debian packages audispd-plugins, laurel, util-linux): %v", p, err)
		}
	}
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	ns := netns(t, fmt.Sprintf("plg%d", os.Getpid()))
	addr := vethTo(t, ns)
	port := port(t)
	tenantLog := tenantAuditd(t, ns, port)

	remoteConf := filepath.Join(dir, "audisp-remote.conf")
	rc := strings.Replace(testaudit.AudispRemoteConf(port, filepath.Join(dir, "remote.queue"), 2000),
		"remote_server = 127.0.0.1", "remote_server = "+addr, 1)
	must(t, os.WriteFile(remoteConf, []byte(rc), 0o640))
	laurelConf := filepath.Join(dir, "laurel.toml")
	must(t, os.WriteFile(laurelConf, []byte(fmt.Sprintf("directory = %q\nuser = \"root\"\nstatusreport-period = 0\n[auditlog]\nfile = \"audit.log\"\n",
		filepath.Join(dir, "laurel"))), 0o640))
	events := filepath.Join(dir, "audispd_events")
	plugins := filepath.Join(dir, "plugins.d")
	must(t, os.MkdirAll(plugins, 0o755))
	// Debian's files, as shipped, with active = yes (and a path of the
	// test's for af_unix's socket and LAUREL's config).
	files := map[string]string{
		"au-remote.conf": "active = yes\ndirection = out\npath = /sbin/audisp-remote\ntype = always\n#args =\nformat = string\n",
		"syslog.conf":    "active = yes\ndirection = out\npath = /sbin/audisp-syslog\ntype = always \nargs = LOG_INFO\nformat = string\n",
		"af_unix.conf":   "\nactive = yes\ndirection = out\npath = builtin_af_unix\ntype = builtin \nargs = 0640 " + events + "\nformat = string\n",
		"laurel.conf":    "active = yes\ndirection = out\ntype = always\nformat = string\npath = /usr/sbin/laurel\nargs = --config " + laurelConf + "\n",
		"binary.conf":    "active = yes\ndirection = out\npath = /sbin/audisp-remote\ntype = always\nformat = binary\n",
		"zos.conf.bak":   "not a plugin's file: a second dot makes it a backup copy, skipped\n",
	}
	for name, body := range files {
		must(t, os.WriteFile(filepath.Join(plugins, name), []byte(body), 0o640))
	}
	syslogSock := newSyslogSocket(t, dir)

	ctlk := testkernel.Take(t)
	key := testKey("plugins")
	prog := privateTrue(t, dir)
	r := startPluginDaemon(t, func() (uint32, error) { st, err := ctlk.Status(); return st.PID, err },
		dir, pluginAuditdConf(dir, ""), "-D\n"+execRule(prog, key), remoteConf, syslogSock.path)

	refused := filepath.Join(plugins, "binary.conf") + ":5: format = binary is not supported"
	if !strings.Contains(r.text(), refused) {
		t.Errorf("the daemon did not name %q:\n%s", refused, r.text())
	}
	// The af_unix reader connects first: records before it are dropped,
	// as auditd drops them.
	waitFor(t, 10*time.Second, func() bool { _, err := os.Stat(events); return err == nil }, "the af_unix socket")
	if fi, err := os.Stat(events); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("af_unix socket %v %v, want mode 0640", fi, err)
	}
	conn, err := net.Dial("unix", events)
	must(t, err)
	defer conn.Close()
	var unix lineReader
	go unix.read(conn)
	waitFor(t, 10*time.Second, func() bool { return r.plugin(t, "af_unix.conf").State == "connected" }, "the af_unix reader to be accepted")

	busyHost(t)
	const n = 5
	for range n {
		must(t, exec.Command(prog).Run())
	}
	keyField := fmt.Sprintf("key=%q", key)
	hostLog := filepath.Join(dir, "log", "audit.log")
	laurelLog := filepath.Join(dir, "laurel", "audit.log")
	waitFor(t, 20*time.Second, func() bool {
		return ausearchCount(t, hostLog, "-k", key) == n && fileCount(tenantLog, keyField) >= n &&
			syslogSock.count(keyField) >= n && countWith(unix.snapshot(), keyField) >= n &&
			fileCount(laurelLog, fmt.Sprintf(`"key":%q`, key)) >= n
	}, fmt.Sprintf("%d events in every plugin's output", n))

	// What they got is the host log's lines: the remote auditd's log has
	// them as ausearch reads them, af_unix's lines are whole record lines
	// with auditd's end-of-event markers (EOE), LAUREL's are JSON.
	if got := ausearchCount(t, tenantLog, "-k", key); got != n {
		t.Errorf("ausearch finds %d events in the remote auditd's log, want %d", got, n)
	}
	lines := unix.snapshot()
	for _, l := range lines {
		if !lineRE.MatchString(l) {
			t.Errorf("af_unix line is not an audit record line: %q", l)
		}
	}
	if countWith(lines, "type=EOE ") == 0 {
		t.Errorf("af_unix got no EOE record (auditd sends its plugins the end-of-event records):\n%s", strings.Join(lines, "\n"))
	}
	lb, err := os.ReadFile(laurelLog)
	must(t, err)
	jsonEvents := 0
	for _, l := range strings.Split(strings.TrimSpace(string(lb)), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Errorf("LAUREL wrote a line that is not JSON: %v: %q", err, l)
			continue
		}
		if sc, ok := ev["SYSCALL"].(map[string]any); ok && sc["key"] == key {
			jsonEvents++
			if sc["exe"] != prog {
				t.Errorf("LAUREL's event has exe %v, want %s", sc["exe"], prog)
			}
		}
	}
	if jsonEvents != n {
		t.Errorf("LAUREL wrote %d JSON events with the key, want %d", jsonEvents, n)
	}

	st := r.status(t)
	names := []string{}
	for _, p := range st.Plugins {
		names = append(names, p.Name)
		if p.Sent == 0 || (p.Name != "af_unix.conf" && p.Dropped != 0) || p.Restarts != 0 {
			t.Errorf("plugin %s: %+v", p.Name, p)
		}
	}
	if strings.Join(names, " ") != "af_unix.conf au-remote.conf laurel.conf syslog.conf" {
		t.Errorf("plugins in the status: %v", names)
	}
	out, err := ctl(t, dir, "status")
	if err != nil || !strings.Contains(out, "plugin:      au-remote.conf (/sbin/audisp-remote): running") {
		t.Errorf("ctl status: %v\n%s", err, out)
	}
	pid := r.cmd.Process.Pid
	r.stop(t)
	if _, err := os.Stat(events); !os.IsNotExist(err) {
		t.Errorf("the af_unix socket outlived the daemon: %v", err)
	}
	// The daemon's own records go to the plugins too, as auditd's do:
	// audisp-remote took DAEMON_START and, before its end of input,
	// DAEMON_END to the remote auditd.
	for _, want := range []string{"type=DAEMON_START ", "type=DAEMON_END "} {
		waitFor(t, 10*time.Second, func() bool {
			b, _ := os.ReadFile(tenantLog)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, want) && strings.Contains(l, fmt.Sprintf(" pid=%d ", pid)) {
					return true
				}
			}
			return false
		}, "the remote auditd to log the daemon's "+want)
	}
}

// TestIntegrationPluginSlowAndDead: a plugin that never reads and one
// that dies at its first record. The host log keeps every record, the
// stalled plugin's drops are counted (status and metrics), the dead one
// is restarted max_restarts times and then left failed, and a SIGHUP
// restarts nothing that works.
func TestIntegrationPluginSlowAndDead(t *testing.T) {
	needTools(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare (util-linux)")
	}
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	plugins := filepath.Join(dir, "plugins.d")
	must(t, os.MkdirAll(plugins, 0o755))
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(plugins, name)
		must(t, os.WriteFile(p, []byte(body), mode))
		must(t, os.Chmod(p, mode))
		return p
	}
	// (auditd-ns, as auditd, sends its plugins SIGHUP on a reload.)
	slow := write("slow", "#!/bin/sh\ntrap '' HUP\nexec sleep 100000\n", 0o750)
	dead := write("dead", "#!/bin/sh\nread line\necho \"$line\" >>\"$0.out\"\nexit 3\n", 0o750)
	write("slow.conf", "active = yes\ndirection = out\npath = "+slow+"\ntype = always\nformat = string\n", 0o640)
	write("dead.conf", "active = yes\ndirection = out\npath = "+dead+"\ntype = always\nformat = string\n", 0o640)
	write("typo.conf", "active = yes\ndirection = out\npath = "+slow+"\ntype = always\nformt = string\n", 0o640)
	syslogSock := newSyslogSocket(t, dir)

	ctlk := testkernel.Take(t)
	lostBefore := func() uint32 { st, err := ctlk.Status(); must(t, err); return st.Lost }()
	key := testKey("pluginslow")
	r := startPluginDaemon(t, func() (uint32, error) { st, err := ctlk.Status(); return st.PID, err },
		dir, pluginAuditdConf(dir, "q_depth = 100\noverflow_action = SYSLOG\nmax_restarts = 2\n"), "-D\n"+unameRule(key), "", syslogSock.path)
	if want := filepath.Join(plugins, "typo.conf") + `:5: unknown keyword "formt"`; !strings.Contains(r.text(), want) {
		t.Errorf("the daemon did not name %s:\n%s", want, r.text())
	}
	// check names the bad file too, and passes: the daemon runs without it.
	if code, out, errs := runCheck(t, "--config", filepath.Join(dir, "auditd.conf")); code != 0 ||
		!strings.Contains(errs, "warning: plugin refused, not run: "+filepath.Join(plugins, "typo.conf")+`:5: unknown keyword "formt"`) {
		t.Errorf("check: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	busyHost(t)
	const n = 3000
	start := time.Now()
	uname(n)
	took := time.Since(start)
	hostLog := filepath.Join(dir, "log", "audit.log")
	waitFor(t, 20*time.Second, func() bool { return ausearchCount(t, hostLog, "-k", key) == n }, fmt.Sprintf("%d events in the host log", n))
	t.Logf("%d audited unames with a stalled plugin: %v", n, took)

	waitFor(t, 10*time.Second, func() bool { return r.plugin(t, "dead.conf").State == "failed" }, "the dead plugin to be given up")
	s := r.plugin(t, "slow.conf")
	// SYSCALL, PROCTITLE and EOE a uname: 3n records for the plugins, of
	// which the pipe takes some (64 KiB), the queue 100, the blocked
	// write a batch (at most 64 KiB of lines, lines are longer than 64
	// bytes); the rest are dropped and counted.
	if s.State != "running" || s.Queued != 100 || s.Dropped < 3*n-3000 || s.Sent+s.Dropped+uint64(s.Queued)+1024 < 3*n {
		t.Errorf("the stalled plugin: %+v", s)
	}
	if syslogSock.count("plugin slow.conf: queue full (q_depth 100), dropping records") == 0 {
		t.Errorf("overflow_action SYSLOG wrote nothing to syslog")
	}
	// The dead plugin: started, died, restarted twice (max_restarts 2),
	// each run read one record; then it is left failed.
	d := r.plugin(t, "dead.conf")
	if d.State != "failed" || d.Restarts != 3 || !strings.Contains(d.LastError, "terminated unexpectedly") {
		t.Errorf("the dead plugin: %+v", d)
	}
	if got := fileCount(dead+".out", "type="); got != 3 {
		t.Errorf("the dead plugin's runs read %d records, want 3", got)
	}
	if !strings.Contains(r.text(), "has exceeded max_restarts") {
		t.Errorf("the daemon did not say the plugin exceeded max_restarts:\n%s", r.text())
	}
	out, err := ctl(t, dir, "status")
	if err != nil || !strings.Contains(out, "plugin:      slow.conf ("+slow+"): running") || !strings.Contains(out, " dropped, 100/100 queued") {
		t.Errorf("ctl status: %v\n%s", err, out)
	}
	// The kernel lost nothing while the plugin stalled.
	if st, err := ctlk.Status(); err != nil || st.Lost != lostBefore {
		t.Errorf("the kernel's lost counter went from %d to %d (%v)", lostBefore, st.Lost, err)
	}
	// SIGHUP: the stalled plugin keeps running (same pid).
	pid := s.PID
	r.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(r.text(), "reloaded the config (SIGHUP)") }, "the reload")
	if s2 := r.plugin(t, "slow.conf"); s2.PID != pid || s2.State != "running" {
		t.Errorf("after SIGHUP the stalled plugin is %+v, was pid %d", s2, pid)
	}
	start = time.Now()
	r.stop(t)
	t.Logf("stopping with a stalled plugin took %v", time.Since(start))
	if lines := checkLines(t, hostLog); lines < 3*n {
		t.Errorf("the host log has %d lines, want at least %d", lines, 3*n)
	}
}
