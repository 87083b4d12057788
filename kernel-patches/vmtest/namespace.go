package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// AUDIT_NAMESPACE and the syscalls whose events carry its records.
const (
	auditNamespace = 1341
	sysUnshare     = 272
	sysSetns       = 308
)

func init() {
	tests = append(tests, []struct {
		name string
		fn   func(*T)
	}{
		{"namespace/net-create-change-destroy", testNsNet},
		{"namespace/setns-change", testNsSetns},
		{"namespace/types", testNsTypes},
		{"namespace/exclude", testNsExclude},
		{"namespace/no-flood", testNsNoFlood},
	}...)
}

// nsIno returns the inode number of /proc/PID/ns/NAME, as stat() gives it.
func nsIno(t *T, pid int, name string) string {
	var st unix.Stat_t
	path := fmt.Sprintf("/proc/%d/ns/%s", pid, name)
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return fmt.Sprint(st.Ino)
}

// nsRecord returns the event's NAMESPACE record with all parts, or "".
func nsRecord(ev []record, parts ...string) string {
	for _, r := range ev {
		if r.typ != auditNamespace {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(" "+r.text+" ", " "+p+" ")
		}
		if ok {
			return r.text
		}
	}
	return ""
}

// waitLine reads one line of p's output.
func waitLine(t *T, p *proc, want string) {
	l, err := p.out.ReadString('\n')
	if strings.TrimSpace(l) != want {
		t.Fatalf("pid %d said %q (%v), want %q", p.pid(), l, err, want)
	}
}

// wantDestroy waits for the destroy record of a namespace: a network
// namespace goes in a worker after an RCU grace period, so give it time.
func wantDestroy(t *T, a *auditd, mark int, typ, ino string) {
	_, ok := a.waitFor(mark, 15*time.Second, func(r record) bool {
		return r.typ == auditNamespace && nsRecord([]record{r}, "op=destroy", "nstype="+typ, "inode="+ino) != ""
	})
	if !ok {
		t.Errorf("no op=destroy nstype=%s inode=%s record; got:\n%s", typ, ino, dump(a.since(mark), auditNamespace))
	}
}

// testNsNet: a task in container 700 unshares its network namespace.
// The unshare event carries the create and change records and the
// task's chain; the namespace's end is logged when the task exits.
func testNsNet(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S unshare -S setns -k vmtest-ns", "", 0)()
	old := nsIno(t, 1, "net")
	m := a.mark()
	p := stub(t, "/bin/busybox", "unshare", "-n", "/bin/busybox", "sh", "-c", "echo ready; read x")
	defer p.kill()
	wantErrno(t, "set 700", writeContid(p.pid(), "700"), nil)
	p.release(t)
	waitLine(t, p, "ready")
	ino := nsIno(t, p.pid(), "net")
	if ino == old {
		t.Fatalf("unshare -n left the task in netns %s", old)
	}
	ev := syscallEvent(t, a, m, p.pid(), sysUnshare)
	if nsRecord(ev, "op=create", "nstype=net", "inode="+ino) == "" {
		t.Errorf("no op=create nstype=net inode=%s in the unshare event:\n%s", ino, dump(ev, 0))
	}
	if r := nsRecord(ev, "op=create"); strings.Contains(r, "parent_inode=") {
		t.Errorf("a network namespace has no parent: %q", r)
	}
	if nsRecord(ev, "op=change", "nstype=net", "old_inode="+old, "new_inode="+ino) == "" {
		t.Errorf("no op=change nstype=net old_inode=%s new_inode=%s in the unshare event:\n%s", old, ino, dump(ev, 0))
	}
	wantChain(t, ev, auditSyscall, "700")
	m = a.mark()
	p.stdin.Close()
	p.lines()
	wantDestroy(t, a, m, "net", ino)
}

// testNsSetns: a task in container 711 joins the network namespace of a
// task in container 710 with setns(); the event names both namespaces.
func testNsSetns(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S setns -k vmtest-setns", "", 0)()
	cmd := exec.Command("/bin/busybox", "sh", "-c", "echo ready; read x")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	owner := startCmd(t, cmd)
	defer owner.kill()
	waitLine(t, owner, "ready")
	wantErrno(t, "set 710", writeContid(owner.pid(), "710"), nil)
	target := nsIno(t, owner.pid(), "net")
	old := nsIno(t, 1, "net")
	m := a.mark()
	j := stub(t, "/bin/busybox", "nsenter", "-n", "-t", itoa(owner.pid()), "/bin/busybox", "true")
	defer j.kill()
	wantErrno(t, "set 711", writeContid(j.pid(), "711"), nil)
	j.release(t)
	j.lines()
	ev := syscallEvent(t, a, m, j.pid(), sysSetns)
	if nsRecord(ev, "op=change", "nstype=net", "old_inode="+old, "new_inode="+target) == "" {
		t.Errorf("no op=change nstype=net old_inode=%s new_inode=%s in the setns event:\n%s", old, target, dump(ev, 0))
	}
	if r := nsRecord(ev, "op=create"); r != "" {
		t.Errorf("setns created a namespace: %q", r)
	}
	wantChain(t, ev, auditSyscall, "711")
}

// testNsTypes: every namespace type of the test kernel logs its creation
// (with its parent for user and pid namespaces) in an unshare event a rule
// selects, and then its destruction.
func testNsTypes(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S unshare -k vmtest-nstypes", "", 0)()
	types := []struct {
		typ, file string // record nstype=, /proc/PID/ns file of the new one
		flag      uintptr
		parent    bool
	}{
		{"cgroup", "cgroup", unix.CLONE_NEWCGROUP, false},
		{"ipc", "ipc", unix.CLONE_NEWIPC, false},
		{"mnt", "mnt", unix.CLONE_NEWNS, false},
		{"net", "net", unix.CLONE_NEWNET, false},
		// pid_for_children shows nothing until the namespace has a
		// task: the shell starts one first.
		{"pid", "pid_for_children", unix.CLONE_NEWPID, true},
		{"time", "time_for_children", unix.CLONE_NEWTIME, false},
		{"user", "user", unix.CLONE_NEWUSER, true},
		{"uts", "uts", unix.CLONE_NEWUTS, false},
	}
	for _, tc := range types {
		if _, err := os.Stat("/proc/1/ns/" + tc.typ); err != nil {
			continue // not in this kernel
		}
		m := a.mark()
		// The child unshares before it execs the shell: an unshare
		// event of a task other than this (the audit daemon, never
		// audited).
		cmd := exec.Command("/bin/busybox", "sh", "-c", "/bin/busybox sleep 1000 & echo ready; read x; kill -9 $!; wait")
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: tc.flag}
		p := startCmd(t, cmd)
		waitLine(t, p, "ready")
		ino := nsIno(t, p.pid(), tc.file)
		parts := []string{"op=create", "nstype=" + tc.typ, "inode=" + ino}
		if tc.parent {
			parts = append(parts, "parent_inode="+nsIno(t, 1, tc.typ))
		}
		r := want(t, a, m, auditNamespace, parts...)
		if !tc.parent && strings.Contains(r.text, "parent_inode=") {
			t.Errorf("%s: a parent where the type has none: %q", tc.typ, r.text)
		}
		m = a.mark()
		p.stdin.Close()
		p.lines()
		wantDestroy(t, a, m, tc.typ, ino)
	}
}

// testNsExclude: "-a exclude,always -F msgtype=1341" silences the records
// and nothing else.
func testNsExclude(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S unshare -k vmtest-nsx", "", 0)()
	del := a.addRule(t, "-a exclude,always -F msgtype=1341", "", 0)
	m := a.mark()
	p := start(t, "/bin/busybox", "unshare", "-n", "/bin/busybox", "true")
	p.lines()
	ev := syscallEvent(t, a, m, p.pid(), sysUnshare)
	if len(ev) == 0 {
		t.Fatalf("the unshare event itself was excluded")
	}
	time.Sleep(300 * time.Millisecond)
	for _, r := range a.since(m) {
		if r.typ == auditNamespace {
			t.Errorf("excluded record delivered: %v", r)
		}
	}
	del()
	m = a.mark()
	p = start(t, "/bin/busybox", "unshare", "-n", "/bin/busybox", "true")
	p.lines()
	want(t, a, m, auditNamespace, "op=create", "nstype=net")
}

// testNsNoFlood (bug 2): an unprivileged user who makes namespaces in a
// loop gets no record logged, with no rules at all and with rules that do
// not select unshare; a task with a contid still gets its records. v1
// logged three records per namespace for anyone, and marked the whole
// syscall for recording.
func testNsNoFlood(t *T) {
	a := needDaemon(t)
	loop := `i=0; while [ $i -lt 20 ]; do /bin/busybox unshare -r -n -u -i /bin/busybox true || exit 1; i=$((i+1)); done; echo done`
	count := func(m int) int {
		// a network namespace goes in a worker: give destroys time
		time.Sleep(2 * time.Second)
		// namespaces of earlier tests whose create was logged may be
		// destroyed now: those destroys are not ours
		earlier := map[string]bool{}
		all := a.since(0)
		for _, r := range all[:m] {
			if r.typ == auditNamespace && field(r.text, "op") == "create" {
				earlier[field(r.text, "inode")] = true
			}
		}
		n := 0
		for _, r := range all[m:] {
			if r.typ == auditNamespace && !(field(r.text, "op") == "destroy" && earlier[field(r.text, "inode")]) {
				n++
			}
		}
		return n
	}
	rules, err := a.listRules()
	if err == nil && len(rules) == 0 {
		m := a.mark()
		ranLoop(t, startAs(t, 1000, "/bin/busybox", "sh", "-c", loop))
		if n := count(m); n != 0 {
			t.Errorf("no rules: an unprivileged unshare loop logged %d NAMESPACE records", n)
		}
	} else {
		fmt.Printf("INFO namespace/no-flood: %d rules loaded, the no-rule case is not run\n", len(rules))
	}
	del := a.addRule(t, "-a always,exit -F arch=b64 -S getppid -k vmtest-other", "", 0)
	m := a.mark()
	ranLoop(t, startAs(t, 1000, "/bin/busybox", "sh", "-c", loop))
	if n := count(m); n != 0 {
		t.Errorf("a rule for getppid only: an unprivileged unshare loop logged %d NAMESPACE records", n)
	}
	del()
	// A task in a container gets them without any rule.
	m = a.mark()
	s := stub(t, "/bin/busybox", "sh", "-c", loop)
	wantErrno(t, "set 630", writeContid(s.pid(), "630"), nil)
	s.release(t)
	ranLoop(t, s)
	if n := count(m); n < 20*2 {
		t.Errorf("container 630: %d NAMESPACE records for 20 rounds of unshare, want at least 40", n)
	}
}

// ranLoop checks that a loop of unshares ran to its end.
func ranLoop(t *T, p *proc) {
	lines, err := p.lines()
	if err != nil || len(lines) == 0 || lines[len(lines)-1] != "done" {
		t.Errorf("the unshare loop failed (%v): %q", err, lines)
	}
}
