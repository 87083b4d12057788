package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const auditdNS = "/bin/auditd-ns"

func init() {
	tests = append(tests, struct {
		name string
		fn   func(*T)
	}{"e2e/auditd-ns-nested-containers", testE2E})
}

// e2eFiles is the daemon's config: two nested containers with file targets.
var e2eFiles = map[string]string{
	"auditd-ns.yaml": `log_file: /tmp/e2e/audit.log
audit_rules: audit.rules
containers_dir: containers
state_dir: /tmp/e2e/state
control_socket: /tmp/e2e/control.sock
space_left: 1
admin_space_left: 1
flush: INCREMENTAL
freq: 1
`,
	"audit.rules":           "-a always,exit -F arch=b64 -S sync -k e2e\n",
	"containers/outer.yaml": "name: outer\nid: 800\ndeliver: {file: /tmp/e2e/outer.log}\nsocket: /tmp/e2e/outer.sock\n",
	"containers/inner.yaml": "name: inner\nid: 801\nparent: outer\ndeliver: {file: /tmp/e2e/inner.log}\n",
}

// auditPID returns the pid the kernel sends records to.
func auditPID(a *auditd) uint32 {
	replies, err := a.requestReplies(a.ctl, auditGet, nil, false)
	if err != nil || len(replies) == 0 || len(replies[0]) < 16 {
		return 0
	}
	return binary.LittleEndian.Uint32(replies[0][12:])
}

// setAuditPID registers (pid = us) or unregisters (0) this process.
func setAuditPID(a *auditd, pid uint32) error {
	st := make([]byte, 44)
	binary.LittleEndian.PutUint32(st[0:], statusPID)
	binary.LittleEndian.PutUint32(st[12:], pid)
	return a.request(a.ctl, auditSet, st)
}

// testE2E runs auditd-ns as the guest's audit daemon, with container
// "inner" (801) nested in "outer" (800), and checks where events land.
func testE2E(t *T) {
	a := needDaemon(t)
	stop := e2eDaemon(t, a, "/tmp/e2e", e2eFiles)
	defer stop()
	defer e2eOutput(t, "/tmp/e2e")
	inOuter := runIn(t, "", "800")
	inInner := runIn(t, "800", "801")
	outside := runIn(t, "", "")
	scopedIDs(t)
	stop()

	has := func(file string, pid int) bool {
		b, _ := os.ReadFile(file)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "syscall=162 ") && strings.Contains(l, fmt.Sprintf(" pid=%d ", pid)) {
				return true
			}
		}
		return false
	}
	for _, c := range []struct {
		file string
		pid  int
		want bool
	}{
		{"/tmp/e2e/audit.log", inOuter, true},
		{"/tmp/e2e/audit.log", inInner, true},
		{"/tmp/e2e/audit.log", outside, true},
		{"/tmp/e2e/outer.log", inOuter, true},
		{"/tmp/e2e/outer.log", inInner, true},
		{"/tmp/e2e/outer.log", outside, false},
		{"/tmp/e2e/inner.log", inInner, true},
		{"/tmp/e2e/inner.log", inOuter, false},
		{"/tmp/e2e/inner.log", outside, false},
	} {
		if got := has(c.file, c.pid); got != c.want {
			t.Errorf("%s has the sync of pid %d: %v, want %v", c.file, c.pid, got, c.want)
		}
	}
}

// e2eDaemon writes files under dir and runs auditd-ns with them as the
// guest's audit daemon (its config dir/auditd-ns.yaml, its output in
// dir/daemon.out) until the returned stop is called (more than once is
// fine): stop waits 2s for the records to be written, stops it, and
// registers a fresh test daemon.
func e2eDaemon(t *T, a *auditd, dir string, files map[string]string) (stop func()) {
	if _, err := os.Stat(auditdNS); err != nil {
		t.Skipf("no %s in the initramfs", auditdNS)
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("%v", err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatalf("%v", err)
		}
	}
	if err := setAuditPID(a, 0); err != nil {
		t.Fatalf("unregistering the test daemon: %v", errnoName(err))
	}
	// Afterwards a fresh test daemon registers: the kernel sends records
	// to the socket that registered.
	reregister := func() {
		d, err := startAuditd()
		if err != nil {
			t.Errorf("re-registering the test daemon: %v", err)
			return
		}
		// Keep what the first daemon saw, for the SAMPLE lines.
		old := a.since(0)
		d.mu.Lock()
		d.recs = append(old, d.recs...)
		d.mu.Unlock()
		daemon = d
	}
	outPath := filepath.Join(dir, "daemon.out")
	d := exec.Command(auditdNS, "run", "--config", filepath.Join(dir, "auditd-ns.yaml"))
	out, _ := os.Create(outPath)
	d.Stdout, d.Stderr = out, out
	if err := d.Start(); err != nil {
		reregister()
		t.Fatalf("starting auditd-ns: %v", err)
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		time.Sleep(2 * time.Second)
		_ = d.Process.Signal(syscall.SIGTERM)
		_ = d.Wait()
		reregister()
	}
	ready := func() bool {
		rules, _ := a.listRules()
		loaded := false
		for _, r := range rules {
			loaded = loaded || strings.Contains(string(r), "e2e")
		}
		b, _ := os.ReadFile(outPath)
		return loaded && strings.Contains(string(b), "containers started")
	}
	deadline := time.Now().Add(20 * time.Second)
	for auditPID(a) != uint32(d.Process.Pid) {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("auditd-ns never registered with the kernel")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Registered is not ready: wait for its rules and its containers.
	for !ready() {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("auditd-ns never loaded its rules and containers")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop
}

// scopedIDs: an orchestrator in container outer (800) registers through
// outer's scoped socket. A contid it nested itself (802, set by a task of
// 800) is accepted; a contid the host set elsewhere (900) is refused, since
// 800 is not on its chain.
func scopedIDs(t *T) {
	h := stub(t, "/init", "helper", "nest-run", "802", "/bin/busybox", "sleep", "30")
	defer h.kill()
	wantErrno(t, "set 800", writeContid(h.pid(), "800"), nil)
	h.release(t)
	for {
		l, err := h.out.ReadString('\n')
		if err != nil {
			t.Fatalf("nested helper named no child: %v", err)
		}
		if strings.HasPrefix(l, "child ") {
			break
		}
	}
	other := sleeper(t)
	defer other.kill()
	wantErrno(t, "set 900", writeContid(other.pid(), "900"), nil)
	time.Sleep(500 * time.Millisecond) // the daemon reads both op=set records
	for _, c := range []struct {
		id, want string
	}{
		{"802", "registered c802"},
		{"900", "is not inside"},
	} {
		file := "/tmp/e2e/c" + c.id + ".yaml"
		body := fmt.Sprintf("name: c%s\nid: %s\nparent: outer\ndeliver: {file: /tmp/e2e/c%s.log}\n", c.id, c.id, c.id)
		if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
			t.Fatalf("%v", err)
		}
		caller := stub(t, "/bin/busybox", "sh", "-c", `exec `+auditdNS+` ctl --socket /tmp/e2e/outer.sock register "$0" 2>&1`, file)
		wantErrno(t, "set 800 on the caller", writeContid(caller.pid(), "800"), nil)
		caller.release(t)
		out, _ := caller.lines()
		if got := strings.Join(out, "\n"); !strings.Contains(got, c.want) {
			t.Errorf("scoped register of id %s: %q, want %q", c.id, got, c.want)
		}
	}
}
