package main

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	tests = append(tests, []struct {
		name string
		fn   func(*T)
	}{
		{"records/container-op", testContainerOp},
		{"records/drop-nested", testDropNested},
		{"records/syscall-chain", testSyscallChain},
		{"records/obj-pid", testObjPID},
		{"records/user-message", testUserMessage},
		{"rules/feature-bit", testFeatureBit},
		{"rules/contid-field", testContidField},
	}...)
}

func needDaemon(t *T) *auditd {
	needContid(t)
	if daemon == nil {
		t.Skipf("not registered as the audit daemon")
	}
	return daemon
}

// want waits for a record of type typ after mark whose text has all parts.
func want(t *T, a *auditd, mark, typ int, parts ...string) record {
	r, ok := a.waitFor(mark, 3*time.Second, func(r record) bool {
		if r.typ != typ {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(" "+r.text+" ", " "+p+" ") {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Errorf("no type %d record with %q; got:\n%s", typ, parts, dump(a.since(mark), typ))
	}
	return r
}

func dump(recs []record, typ int) string {
	var b strings.Builder
	for _, r := range recs {
		if typ == 0 || r.typ == typ || r.typ == containerID {
			fmt.Fprintln(&b, r)
		}
	}
	return b.String()
}

func testContainerOp(t *T) {
	a := needDaemon(t)
	m := a.mark()
	p := sleeper(t)
	defer p.kill()
	pid := itoa(p.pid())
	wantErrno(t, "set 300", writeContid(p.pid(), "300"), nil)
	want(t, a, m, containerOp, "op=set", "opid="+pid, "contid=300", "old-contid=-1", "res=1")
	wantErrno(t, "set 301", writeContid(p.pid(), "301"), unix.EEXIST)
	want(t, a, m, containerOp, "op=set", "opid="+pid, "contid=301", "old-contid=300", "res=0")
	wantErrno(t, "write garbage", writeContid(p.pid(), "abc"), unix.EINVAL)
	want(t, a, m, containerOp, "op=set", "opid="+pid, "contid=-1", "old-contid=300", "res=0")
	p.kill()
	want(t, a, m, containerOp, "op=drop", "opid="+pid, "contid=-1", "old-contid=300", "res=1")
}

func testDropNested(t *T) {
	a := needDaemon(t)
	m := a.mark()
	p := stub(t, "/init", "helper", "nest", "310", "311")
	defer p.kill()
	wantErrno(t, "set 310 on the stub", writeContid(p.pid(), "310"), nil)
	p.release(t)
	checkHelper(t, p)
	inner := want(t, a, m, containerOp, "op=drop", "contid=-1", "old-contid=311,^310", "res=1")
	outer := want(t, a, m, containerOp, "op=drop", "opid="+itoa(p.pid()), "old-contid=310", "res=1")
	if inner.serial != "" && outer.serial != "" && atoi(inner.serial) > atoi(outer.serial) {
		t.Errorf("310 dropped before 311 nested in it:\n%v\n%v", outer, inner)
	}
}

// syscallEvent waits for the SYSCALL record of pid's syscall nr and
// returns its whole event.
func syscallEvent(t *T, a *auditd, mark, pid, nr int) []record {
	r, ok := a.waitFor(mark, 3*time.Second, func(r record) bool {
		return r.typ == auditSyscall && field(r.text, "pid") == itoa(pid) && field(r.text, "syscall") == itoa(nr)
	})
	if !ok {
		t.Errorf("no SYSCALL %d record of pid %d; got:\n%s", nr, pid, dump(a.since(mark), auditSyscall))
		return nil
	}
	// The last such call is the one the test made.
	time.Sleep(50 * time.Millisecond)
	for _, x := range a.since(mark) {
		if x.typ == auditSyscall && field(x.text, "pid") == itoa(pid) && field(x.text, "syscall") == itoa(nr) {
			r = x
		}
	}
	return a.event(mark, r.serial)
}

// contidRecord returns the text of the event's CONTAINER_ID record for
// the record type rt, or "" if there is none.
func contidRecord(ev []record, rt int) string {
	for _, r := range ev {
		if r.typ == containerID && field(r.text, "record") == itoa(rt) {
			return r.text
		}
	}
	return ""
}

func wantChain(t *T, ev []record, rt int, chain string) {
	got := contidRecord(ev, rt)
	if chain == "" {
		if got != "" {
			t.Errorf("unexpected CONTAINER_ID %q in event:\n%s", got, dump(ev, 0))
		}
		return
	}
	if field(got, "contid") != chain {
		t.Errorf("CONTAINER_ID for record %d: got %q, want contid=%s; event:\n%s", rt, got, chain, dump(ev, 0))
	}
}

// runIn runs busybox uname in contid (nested in outer if outer is set, or
// without a contid if both are empty) and returns the pid that ran it.
func runIn(t *T, outer, contid string) int {
	switch {
	case contid == "":
		p := start(t, "/bin/busybox", "sync")
		p.lines()
		return p.pid()
	case outer == "":
		p := stub(t, "/bin/busybox", "sync")
		wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
		p.release(t)
		p.lines()
		return p.pid()
	default:
		p := stub(t, "/init", "helper", "nest-run", contid, "/bin/busybox", "sync")
		wantErrno(t, "set "+outer, writeContid(p.pid(), outer), nil)
		p.release(t)
		for _, l := range checkHelper(t, p) {
			var pid int
			if _, err := fmt.Sscanf(l, "child %d", &pid); err == nil {
				return pid
			}
		}
		t.Fatalf("nested helper named no child")
		return 0
	}
}

// sync(2): busybox sh never calls it itself, unlike uname(2).
const sysSync, sysKill = 162, 62

func testSyscallChain(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-sync", "", 0)()
	m := a.mark()
	pid := runIn(t, "", "320")
	wantChain(t, syscallEvent(t, a, m, pid, sysSync), auditSyscall, "320")
	pid = runIn(t, "330", "331")
	wantChain(t, syscallEvent(t, a, m, pid, sysSync), auditSyscall, "331,^330")
	pid = runIn(t, "", "")
	wantChain(t, syscallEvent(t, a, m, pid, sysSync), auditSyscall, "")
}

func testObjPID(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S kill -k vmtest-kill", "", 0)()
	p := sleeper(t)
	defer p.kill()
	wantErrno(t, "set 340", writeContid(p.pid(), "340"), nil)
	m := a.mark()
	// The registered audit daemon (this process) is never audited, so a
	// helper sends the signal.
	k := start(t, "/init", "helper", "kill", itoa(p.pid()))
	checkHelper(t, k)
	ev := syscallEvent(t, a, m, k.pid(), sysKill)
	want(t, a, m, auditObjPID, "opid="+itoa(p.pid()))
	wantChain(t, ev, auditObjPID, "340")
	if got := field(contidRecord(ev, auditObjPID), "opid"); got != itoa(p.pid()) {
		t.Errorf("CONTAINER_ID for OBJ_PID names opid %q, want %d", got, p.pid())
	}
	wantChain(t, ev, auditSyscall, "") // the killer has no contid
}

func testFeatureBit(t *T) {
	a := needDaemon(t)
	f, err := a.features()
	if err != nil {
		t.Fatalf("getting audit status: %v", err)
	}
	if f&featureContainer == 0 {
		t.Errorf("feature bitmap %#x lacks 0x80", f)
	}
}

func testContidField(t *T) {
	a := needDaemon(t)
	del := a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-c350", "=", 350)
	if !contidRuleListed(a, "vmtest-c350", 350) {
		t.Errorf("the contid rule does not list back with field 27 = 350")
	}
	m := a.mark()
	in := runIn(t, "", "350")
	nested := runIn(t, "350", "351")
	other := runIn(t, "", "360")
	none := runIn(t, "", "")
	wantKey(t, a, m, in, "vmtest-c350")
	wantKey(t, a, m, nested, "vmtest-c350")
	time.Sleep(300 * time.Millisecond)
	noEvent(t, a, m, other)
	noEvent(t, a, m, none)
	del()

	defer a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-n350", "!=", 350)()
	m = a.mark()
	in = runIn(t, "", "350")
	nested = runIn(t, "350", "351")
	other = runIn(t, "", "360")
	none = runIn(t, "", "")
	wantKey(t, a, m, other, "vmtest-n350")
	wantKey(t, a, m, none, "vmtest-n350")
	time.Sleep(300 * time.Millisecond)
	noEvent(t, a, m, in)
	noEvent(t, a, m, nested)
}

func wantKey(t *T, a *auditd, mark, pid int, key string) {
	ev := syscallEvent(t, a, mark, pid, sysSync)
	for _, r := range ev {
		if r.typ == auditSyscall && field(r.text, "key") == `"`+key+`"` {
			return
		}
	}
	t.Errorf("pid %d: no SYSCALL with key %s:\n%s", pid, key, dump(ev, 0))
}

func noEvent(t *T, a *auditd, mark, pid int) {
	for _, r := range a.since(mark) {
		if r.typ == auditSyscall && field(r.text, "pid") == itoa(pid) {
			t.Errorf("pid %d should not match: %v", pid, r)
		}
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func testUserMessage(t *T) {
	a := needDaemon(t)
	m := a.mark()
	p := stub(t, "/init", "helper", "usermsg", "vmtest-user-500")
	wantErrno(t, "set 500", writeContid(p.pid(), "500"), nil)
	p.release(t)
	checkHelper(t, p)
	userEvent(t, a, m, "vmtest-user-500", "500")

	p = stub(t, "/init", "helper", "nest-run", "501", "/init", "helper", "usermsg", "vmtest-user-501")
	wantErrno(t, "set 500", writeContid(p.pid(), "500"), nil)
	p.release(t)
	checkHelper(t, p)
	userEvent(t, a, m, "vmtest-user-501", "501,^500")

	p = start(t, "/init", "helper", "usermsg", "vmtest-user-none")
	checkHelper(t, p)
	userEvent(t, a, m, "vmtest-user-none", "")
}

// userEvent finds the user message with text and checks its chain.
func userEvent(t *T, a *auditd, mark int, text, chain string) {
	r := want(t, a, mark, auditUser, "msg='"+text+"'")
	if r.serial == "" {
		return
	}
	time.Sleep(50 * time.Millisecond)
	var ev []record
	for _, x := range a.since(mark) {
		if x.serial == r.serial {
			ev = append(ev, x)
		}
	}
	wantChain(t, ev, auditUser, chain)
}

// contidRuleListed tells whether a loaded rule with key has a contid
// field whose u64 (in the rule's buf) is contid.
func contidRuleListed(a *auditd, key string, contid uint64) bool {
	rules, err := a.listRules()
	if err != nil {
		return false
	}
	le := binary.LittleEndian
	for _, r := range rules {
		if len(r) < ruleHeader || !strings.Contains(string(r[ruleHeader:]), key) {
			continue
		}
		n := int(le.Uint32(r[ruleFieldCount:]))
		off := ruleHeader
		for i := 0; i < n && i < 64; i++ {
			v := int(le.Uint32(r[ruleValues+4*i:]))
			switch le.Uint32(r[ruleFields+4*i:]) {
			case fieldContid:
				return v == 8 && off+8 <= len(r) && le.Uint64(r[off:]) == contid
			case 13, 14, 15, 16, 17, 19, 20, 21, 22, 23, 105, 107, 112, 210:
				// string fields (key, watch, dir, exe, LSM labels) use buf
				off += v
			}
		}
	}
	return false
}
