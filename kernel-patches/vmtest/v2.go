package main

// Tests added with v2 of the series, one or more per bug the review of v1
// found (the bug numbers are those of issue 16 and of the cover letter's
// changelog).

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	tests = append(tests, []struct {
		name string
		fn   func(*T)
	}{
		{"contid/opener-fd", testOpenerFD},
		{"contid/read-needs-cap", testReadNeedsCap},
		{"contid/eexist-race-drop-order", testEexistRace},
		{"records/audit-disabled", testAuditDisabled},
		{"records/unprivileged-garbage", testUnprivilegedGarbage},
		{"records/order", testRecordOrder},
		{"records/ptrace", testPtrace},
		{"rules/contid-task-list", testContidTaskList},
		{"rules/contid-exclude-list", testContidExcludeList},
		{"rules/contid-user-list", testContidUserList},
		{"rules/contid-with-strings", testContidWithStrings},
		{"zz/ausearch-groups-events", testAusearch},
	}...)
}

// setEnabled turns auditing on (1) or off (0).
func (a *auditd) setEnabled(v uint32) error {
	st := make([]byte, 44)
	binary.LittleEndian.PutUint32(st[0:], statusEnabled)
	binary.LittleEndian.PutUint32(st[4:], v)
	return a.request(a.ctl, auditSet, st)
}

// testOpenerFD (bug 5): a file an unprivileged task opened does not let a
// privileged one that gets the descriptor set (or read) a contid.
func testOpenerFD(t *T) {
	needContid(t)
	target := startAs(t, 1000, "/bin/busybox", "sleep", "1000")
	defer target.kill()
	waitExe(t, target.pid(), "/bin/busybox")
	opener := startAs(t, 1000, "/init", "helper", "open-wait", contidPath(target.pid()))
	defer opener.kill()
	fd := -1
	for fd < 0 {
		l, err := opener.out.ReadString('\n')
		if err != nil {
			t.Fatalf("the unprivileged opener said %q (%v)", l, err)
		}
		fmt.Sscanf(l, "fd %d", &fd)
	}
	pidfd, err := unix.PidfdOpen(opener.pid(), 0)
	if err != nil {
		t.Fatalf("pidfd_open: %v", err)
	}
	defer unix.Close(pidfd)
	mine, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		t.Fatalf("pidfd_getfd: %v", err)
	}
	defer unix.Close(mine)
	_, err = unix.Write(mine, []byte("520"))
	wantErrno(t, "write through an unprivileged opener's file", err, unix.EPERM)
	_, err = unix.Pread(mine, make([]byte, 32), 0)
	if err == nil {
		t.Errorf("read through an unprivileged opener's file: success, want an error")
	}
	wantContid(t, target.pid(), unset)
	// The same write through a file this (privileged) task opened works.
	wantErrno(t, "write through our own file", writeContid(target.pid(), "520"), nil)
}

// testReadNeedsCap (bug 7): the contid is no general container identifier:
// reading it needs CAP_AUDIT_CONTROL.
func testReadNeedsCap(t *T) {
	needContid(t)
	checkHelper(t, startAs(t, 1000, "/init", "helper", "child-read", "EPERM"))
	// and root reads it
	p := sleeper(t)
	defer p.kill()
	wantContid(t, p.pid(), unset)
}

// testEexistRace (bugs 1 and 13): a second orchestrator keeps being
// refused a contid while the holder's last task exits. v1 took and dropped
// a reference for each refusal, so the exit could miss the final put: a
// WARN (panic_on_warn in this guest) and a contid reserved forever. The
// contid must become free, and only after its drop is logged: v1 released
// the ID first, so the next op=set could precede the old drop.
func testEexistRace(t *T) {
	a := needDaemon(t)
	m := a.mark()
	for round := 0; round < 10; round++ {
		p := sleeper(t)
		wantErrno(t, "set 530", writeContid(p.pid(), "530"), nil)
		h := start(t, "/init", "helper", "hammer", "530", "20")
		waitLine(t, h, "started")
		time.Sleep(time.Duration(3*round) * time.Millisecond)
		p.cmd.Process.Signal(unix.SIGKILL) // not reaped yet
		checkHelper(t, h)
		p.cmd.Wait()
	}
	time.Sleep(300 * time.Millisecond)
	live, sets, drops := false, 0, 0
	for _, r := range a.since(m) {
		if r.typ != containerOp || field(r.text, "res") != "1" {
			continue
		}
		switch {
		case field(r.text, "op") == "set" && field(r.text, "contid") == "530":
			if live {
				t.Errorf("530 set by another orchestrator before its drop: %v", r)
			}
			live = true
			sets++
		case field(r.text, "op") == "drop" && field(r.text, "old-contid") == "530":
			live = false
			drops++
		}
	}
	if sets != 20 || drops != 20 {
		t.Errorf("%d sets and %d drops of 530, want 20 of each", sets, drops)
	}
}

// testAuditDisabled (bug 4): with auditing off, setting, refusing,
// dropping and capcontid log nothing.
func testAuditDisabled(t *T) {
	a := needDaemon(t)
	if err := a.setEnabled(0); err != nil {
		t.Fatalf("disabling audit: %v", errnoName(err))
	}
	m := a.mark()
	func() {
		defer func() {
			if err := a.setEnabled(1); err != nil {
				t.Errorf("enabling audit again: %v", errnoName(err))
			}
		}()
		p := sleeper(t)
		wantErrno(t, "set 540", writeContid(p.pid(), "540"), nil)
		wantErrno(t, "set 541", writeContid(p.pid(), "541"), unix.EEXIST)
		wantErrno(t, "write garbage", writeContid(p.pid(), "x"), unix.EINVAL)
		if _, err := os.Stat(capPath(p.pid())); err == nil {
			wantErrno(t, "grant capcontid", writeFile(capPath(p.pid()), "1"), nil)
		}
		p.kill()
		time.Sleep(300 * time.Millisecond)
	}()
	for _, r := range a.since(m) {
		if r.typ == containerOp {
			t.Errorf("a record with auditing off: %v", r)
		}
	}
}

// testUnprivilegedGarbage (bug 4): an unprivileged writer is refused before
// its input is parsed, and nothing is logged for it.
func testUnprivilegedGarbage(t *T) {
	a := needDaemon(t)
	m := a.mark()
	h := startAs(t, 1000, "/init", "helper", "child-write", "garbage", "EPERM")
	checkHelper(t, h)
	h = startAs(t, 1000, "/init", "helper", "child-write", "550", "EPERM")
	checkHelper(t, h)
	time.Sleep(300 * time.Millisecond)
	for _, r := range a.since(m) {
		if r.typ == containerOp {
			t.Errorf("a record for an unprivileged writer: %v", r)
		}
	}
}

// testRecordOrder (bug 9): CONTAINER_ID comes before the SYSCALL and USER
// records it qualifies, since user space ends an event at PROCTITLE and at
// a user message.
func testRecordOrder(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-order", "", 0)()
	m := a.mark()
	pid := runIn(t, "", "570")
	ev := syscallEvent(t, a, m, pid, sysSync)
	wantFirst(t, ev, auditSyscall)
	p := stub(t, "/init", "helper", "usermsg", "vmtest-order-571")
	wantErrno(t, "set 571", writeContid(p.pid(), "571"), nil)
	p.release(t)
	checkHelper(t, p)
	r := want(t, a, m, auditUser, "msg='vmtest-order-571'")
	time.Sleep(50 * time.Millisecond)
	var uev []record
	for _, x := range a.since(m) {
		if r.serial != "" && x.serial == r.serial {
			uev = append(uev, x)
		}
	}
	wantFirst(t, uev, auditUser)
}

// wantFirst checks that the event's CONTAINER_ID for record rt is its first
// record.
func wantFirst(t *T, ev []record, rt int) {
	if len(ev) == 0 {
		return
	}
	if ev[0].typ != containerID || field(ev[0].text, "record") != itoa(rt) {
		t.Errorf("the event does not start with CONTAINER_ID record=%d:\n%s", rt, dump(ev, 0))
	}
}

// testPtrace (bug 15): the target of PTRACE_ATTACH gets its chain, as
// signal targets do.
func testPtrace(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S ptrace -k vmtest-ptrace", "", 0)()
	p := sleeper(t)
	defer p.kill()
	wantErrno(t, "set 580", writeContid(p.pid(), "580"), nil)
	m := a.mark()
	h := start(t, "/init", "helper", "ptrace", itoa(p.pid()))
	checkHelper(t, h)
	// the PTRACE_ATTACH event (not the later PTRACE_DETACH)
	r := want(t, a, m, auditObjPID, "opid="+itoa(p.pid()))
	if r.serial == "" {
		return
	}
	wantChain(t, a.event(m, r.serial), auditObjPID, "580")
}

// syncChild runs "sh -c 'busybox sync & wait'" in a stub given contid, so
// that sync runs in a task forked after the contid was set, and returns
// the stub's pid.
func syncChild(t *T, contid string) int {
	p := stub(t, "/bin/busybox", "sh", "-c", "/bin/busybox sync & wait")
	wantErrno(t, "set "+contid, writeContid(p.pid(), contid), nil)
	p.release(t)
	p.lines()
	return p.pid()
}

// syncOfChild tells whether a SYSCALL sync record of a child of ppid
// arrived after mark.
func syncOfChild(a *auditd, mark, ppid int) bool {
	for _, r := range a.since(mark) {
		if r.typ == auditSyscall && field(r.text, "syscall") == itoa(sysSync) && field(r.text, "ppid") == itoa(ppid) {
			return true
		}
	}
	return false
}

// testContidTaskList (bug 8): "-a never,task -F contid=N" stops auditing of
// tasks forked in container N (v1 compared the child's contid before the
// child had one, so it never matched).
func testContidTaskList(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-task", "", 0)()
	del := a.addRule(t, "-a never,task", "=", 590)
	m := a.mark()
	in := syncChild(t, "590")
	other := syncChild(t, "591")
	time.Sleep(500 * time.Millisecond)
	if syncOfChild(a, m, in) {
		t.Errorf("a task forked in container 590 was audited despite -a never,task -F contid=590")
	}
	if !syncOfChild(a, m, other) {
		t.Errorf("a task forked in container 591 was not audited:\n%s", dump(a.since(m), auditSyscall))
	}
	del()
}

// testContidExcludeList: "-a always,exclude -F contid=N" drops the records
// of tasks in container N and only those.
func testContidExcludeList(t *T) {
	a := needDaemon(t)
	defer a.addRule(t, "-a always,exit -F arch=b64 -S sync -k vmtest-excl", "", 0)()
	del := a.addRule(t, "-a exclude,always", "=", 600)
	m := a.mark()
	in := runIn(t, "", "600")
	nested := runIn(t, "600", "601")
	other := runIn(t, "", "602")
	wantKey(t, a, m, other, "vmtest-excl")
	time.Sleep(300 * time.Millisecond)
	noEvent(t, a, m, in)
	noEvent(t, a, m, nested)
	del()
}

// testContidUserList: "-a never,user -F contid=N" drops user messages from
// container N.
func testContidUserList(t *T) {
	a := needDaemon(t)
	del := a.addRule(t, "-a never,user", "=", 610)
	defer del()
	m := a.mark()
	for _, c := range []struct{ contid, text string }{{"610", "vmtest-user-610"}, {"611", "vmtest-user-611"}} {
		p := stub(t, "/init", "helper", "usermsg", c.text)
		wantErrno(t, "set "+c.contid, writeContid(p.pid(), c.contid), nil)
		p.release(t)
		checkHelper(t, p)
	}
	want(t, a, m, auditUser, "msg='vmtest-user-611'")
	for _, r := range a.since(m) {
		if strings.Contains(r.text, "vmtest-user-610") {
			t.Errorf("a user message from container 610 got through: %v", r)
		}
	}
}

// testContidWithStrings: a contid field after string fields (dir, key)
// lists back with its value, and matches.
func testContidWithStrings(t *T) {
	a := needDaemon(t)
	// contid as the first field, its u64 before the key in buf
	wf, err := buildRule("-a always,exit -F arch=b64 -S sync -F success=1 -k vmtest-mixed", "", 0)
	if err != nil {
		t.Fatalf("%v", err)
	}
	wf = prependContid(wf, 620)
	if err := a.request(a.ctl, auditAddRule, wf); err != nil {
		t.Fatalf("adding the rule: %v", errnoName(err))
	}
	defer a.request(a.ctl, auditDelRule, wf)
	if !contidRuleListed(a, "vmtest-mixed", 620) {
		t.Errorf("the rule with contid before its key does not list back with contid 620")
	}
	m := a.mark()
	in := runIn(t, "", "620")
	other := runIn(t, "", "621")
	wantKey(t, a, m, in, "vmtest-mixed")
	time.Sleep(300 * time.Millisecond)
	noEvent(t, a, m, other)
}

// testAusearch (bug 9): the real ausearch groups every event the guest
// captured into one event each: no serial appears in two of its events.
// The host log auditd-ns wrote in the end-to-end test must be intact too:
// it writes the new types as auditd does, UNKNOWN[1340] and so on, since
// ausearch 3.0.9 splits off a type name it does not know.
func testAusearch(t *T) {
	a := needDaemon(t)
	if _, err := os.Stat("/sbin/ausearch"); err != nil {
		t.Skipf("no /sbin/ausearch in the initramfs")
	}
	var b strings.Builder
	n := 0
	for _, r := range a.since(0) {
		if r.serial == "" {
			continue
		}
		fmt.Fprintf(&b, "type=UNKNOWN[%d] msg=audit(%s:%s): %s\n", r.typ, r.ts, r.serial, r.text)
		n++
	}
	if err := os.WriteFile("/tmp/captured.log", []byte(b.String()), 0o600); err != nil {
		t.Fatalf("%v", err)
	}
	ausearchIntact(t, "/tmp/captured.log", n)
	if _, err := os.Stat("/tmp/e2e/audit.log"); err == nil {
		ausearchIntact(t, "/tmp/e2e/audit.log", 0)
	}
}

var msgRE = regexp.MustCompile(`msg=audit\(\d+\.\d+:(\d+)\)`)

// ausearchIntact runs ausearch over log and fails for every serial that
// it splits over more than one event.
func ausearchIntact(t *T, log string, records int) {
	out, err := exec.Command("/sbin/ausearch", "--input", log).CombinedOutput()
	if err != nil && len(out) == 0 {
		t.Fatalf("ausearch %s: %v", log, err)
	}
	events := map[string]int{}
	count := 0
	for _, block := range strings.Split(string(out), "\n----\n") {
		seen := map[string]bool{}
		for _, l := range strings.Split(block, "\n") {
			if m := msgRE.FindStringSubmatch(l); m != nil {
				seen[m[1]] = true
				count++
			}
		}
		for s := range seen {
			events[s]++
		}
	}
	var split []string
	for s, k := range events {
		if k > 1 {
			split = append(split, s)
		}
	}
	sort.Strings(split)
	fmt.Printf("INFO ausearch %s: %d records in, %d out, %d events, %d split\n", log, records, count, len(events), len(split))
	if len(events) == 0 {
		t.Errorf("ausearch found no events in %s:\n%s", log, out)
	}
	for i, s := range split {
		if i == 10 {
			t.Errorf("... and %d more", len(split)-10)
			break
		}
		var recs []string
		for _, l := range strings.Split(string(out), "\n") {
			if m := msgRE.FindStringSubmatch(l); m != nil && m[1] == s || l == "----" {
				recs = append(recs, l)
			}
		}
		t.Errorf("ausearch splits event %s of %s:\n%s", s, log, strings.Join(recs, "\n"))
	}
}

// prependContid makes "contid = v" the rule's first field, its u64 the
// first bytes of buf.
func prependContid(wf []byte, v uint64) []byte {
	le := binary.LittleEndian
	n := int(le.Uint32(wf[ruleFieldCount:]))
	buflen := int(le.Uint32(wf[ruleBufLen:]))
	out := make([]byte, ruleHeader+buflen+8)
	copy(out, wf[:ruleFields])
	for _, base := range []int{ruleFields, ruleValues, ruleFieldFlags} {
		copy(out[base+4:base+4*(n+1)], wf[base:base+4*n])
	}
	le.PutUint32(out[ruleFields:], fieldContid)
	le.PutUint32(out[ruleValues:], 8)
	le.PutUint32(out[ruleFieldFlags:], opEqual)
	le.PutUint32(out[ruleFieldCount:], uint32(n+1))
	le.PutUint32(out[ruleBufLen:], uint32(buflen+8))
	le.PutUint64(out[ruleHeader:], v)
	copy(out[ruleHeader+8:], wf[ruleHeader:ruleHeader+buflen])
	return out
}
