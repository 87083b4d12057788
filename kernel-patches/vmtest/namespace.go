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
		return r.typ == auditNamespace && nsRecord([]record{r}, "op=destroy", "type="+typ, "ino="+ino) != ""
	})
	if !ok {
		t.Errorf("no op=destroy type=%s ino=%s record; got:\n%s", typ, ino, dump(a.since(mark), auditNamespace))
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
	if nsRecord(ev, "op=create", "type=net", "ino="+ino) == "" {
		t.Errorf("no op=create type=net ino=%s in the unshare event:\n%s", ino, dump(ev, 0))
	}
	if r := nsRecord(ev, "op=create"); strings.Contains(r, "parent_ino=") {
		t.Errorf("a network namespace has no parent: %q", r)
	}
	if nsRecord(ev, "op=change", "type=net", "old_ino="+old, "new_ino="+ino) == "" {
		t.Errorf("no op=change type=net old_ino=%s new_ino=%s in the unshare event:\n%s", old, ino, dump(ev, 0))
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
	if nsRecord(ev, "op=change", "type=net", "old_ino="+old, "new_ino="+target) == "" {
		t.Errorf("no op=change type=net old_ino=%s new_ino=%s in the setns event:\n%s", old, target, dump(ev, 0))
	}
	if r := nsRecord(ev, "op=create"); r != "" {
		t.Errorf("setns created a namespace: %q", r)
	}
	wantChain(t, ev, auditSyscall, "711")
}

// testNsTypes: every namespace type of the test kernel logs its creation
// (with its parent for user and pid namespaces) and its destruction.
func testNsTypes(t *T) {
	a := needDaemon(t)
	types := []struct {
		typ, file string // record type=, /proc/PID/ns file of the new one
		flag      uintptr
		parent    bool
	}{
		{"cgroup", "cgroup", unix.CLONE_NEWCGROUP, false},
		{"ipc", "ipc", unix.CLONE_NEWIPC, false},
		{"mnt", "mnt", unix.CLONE_NEWNS, false},
		{"net", "net", unix.CLONE_NEWNET, false},
		// pid_for_children shows nothing until the namespace has a
		// task, so the child is cloned into it instead.
		{"pid", "pid", unix.CLONE_NEWPID, true},
		{"time", "time_for_children", unix.CLONE_NEWTIME, false},
		{"user", "user", unix.CLONE_NEWUSER, true},
		{"uts", "uts", unix.CLONE_NEWUTS, false},
	}
	for _, tc := range types {
		if _, err := os.Stat("/proc/1/ns/" + tc.typ); err != nil {
			continue // not in this kernel
		}
		m := a.mark()
		cmd := exec.Command("/bin/busybox", "sh", "-c", "echo ready; read x")
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: tc.flag}
		if tc.flag == unix.CLONE_NEWPID {
			cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: tc.flag}
		}
		p := startCmd(t, cmd)
		waitLine(t, p, "ready")
		ino := nsIno(t, p.pid(), tc.file)
		parts := []string{"op=create", "type=" + tc.typ, "ino=" + ino}
		if tc.parent {
			parts = append(parts, "parent_ino="+nsIno(t, 1, tc.typ))
		}
		r := want(t, a, m, auditNamespace, parts...)
		if !tc.parent && strings.Contains(r.text, "parent_ino=") {
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
	want(t, a, m, auditNamespace, "op=create", "type=net")
}
