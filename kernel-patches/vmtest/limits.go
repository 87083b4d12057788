package main

// Tests of v2's limits (issue 16, bug 11: nesting depth and containers per
// network namespace), of the per-namespace container accounting that
// replaced v1's allocation under tasklist_lock (bug 12), and of the
// harness's remaining cases: capcontid held by a task whose children are
// not orchestrators, the unprivileged flood's backlog, and kmemleak.

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The series' limits (AUDIT_CONTID_DEPTH, AUDIT_CONTID_NETNS_MAX).
const (
	contidDepth    = 8
	contidNetnsMax = 16
)

func init() {
	tests = append(tests, []struct {
		name string
		fn   func(*T)
	}{
		{"contid/nesting-depth", testNestingDepth},
		{"contid/netns-limit", testNetnsLimit},
		{"records/netfilter-unshare-setns", testNetfilterMoves},
		{"capcontid/descendant-not-orchestrator", testCapDescendant},
		{"namespace/flood-backlog", testFloodBacklog},
		{"zz/kmemleak", testKmemleak},
		{"zz/kernel-clean", testKernelClean},
	}...)
}

// deep is the helper role "deep D MAX BASE": a task at depth D of a chain
// of nested containers (its contid BASE+D-1) that starts a child and
// nests contid BASE+D in it, which must work while the chain stays within
// MAX and give EMLINK past it. Each level's child does the same.
func (h *helper) deep(d, max, base int) {
	h.contidIs(os.Getpid(), strconv.Itoa(base+d-1))
	cmd, in := h.startHeld(d+1, "deep", strconv.Itoa(d+1), strconv.Itoa(max), strconv.Itoa(base))
	if cmd == nil {
		return
	}
	next := strconv.Itoa(base + d)
	err := writeContid(cmd.Process.Pid, next)
	if d+1 > max {
		h.expect(fmt.Sprintf("nest %s at depth %d", next, d+1), err, "EMLINK")
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return
	}
	h.expect(fmt.Sprintf("nest %s at depth %d", next, d+1), err, "success")
	h.release(d+1, cmd, in)
}

// startHeld starts "/init helper ROLE ARGS..." as a child of busybox sh
// that waits for a line on its stdin before it execs, and returns once
// the child runs busybox (its contid can be set before the role runs);
// nil if it could not start. release lets it go and waits for it.
func (h *helper) startHeld(level int, role string, args ...string) (*exec.Cmd, io.WriteCloser) {
	cmd := exec.Command("/bin/busybox", append([]string{"sh", "-c", `read x; exec "$@"`, "sh", "/init", "helper", role}, args...)...)
	cmd.Stdout = os.Stdout
	in, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		h.check(false, "starting level %d: %v", level, err)
		return nil, nil
	}
	for i := 0; i < 500; i++ {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); l == "/bin/busybox" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd, in
}

// release lets a child startHeld made go on, and checks that it ran.
func (h *helper) release(level int, cmd *exec.Cmd, in io.WriteCloser) {
	_, _ = in.Write([]byte("go\n"))
	in.Close()
	h.check(cmd.Wait() == nil, "level %d ran", level)
}

// testNestingDepth (bug 11): containers nest AUDIT_CONTID_DEPTH deep and
// no deeper (v1 had no bound), and the deepest chain is logged whole.
func testNestingDepth(t *T) {
	needContid(t)
	a := daemon
	var m int
	if a != nil {
		m = a.mark()
	}
	p := stub(t, "/init", "helper", "deep", "1", itoa(contidDepth), "900")
	defer p.kill()
	wantErrno(t, "set 900", writeContid(p.pid(), "900"), nil)
	p.release(t)
	lines := checkHelper(t, p)
	refused := 0
	for _, l := range lines {
		if strings.Contains(l, "got EMLINK, want EMLINK") {
			refused++
		}
	}
	if refused != 1 {
		t.Errorf("want one refusal at depth %d, got %d:\n%s", contidDepth+1, refused, strings.Join(lines, "\n"))
	}
	if a == nil {
		return
	}
	chain := make([]string, contidDepth)
	for i := range chain {
		chain[i] = "^" + itoa(900+contidDepth-1-i)
	}
	chain[0] = chain[0][1:]
	want(t, a, m, containerOp, "op=drop", "old-contid="+strings.Join(chain, ","))
}

// sleepersIn reads n pids from p, one a line, and waits until each runs
// busybox.
func sleepersIn(t *T, p *proc, n int) []int {
	var pids []int
	for len(pids) < n {
		l, err := p.out.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the sleepers' pids: %v (%q)", err, l)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil {
			t.Fatalf("not a pid: %q", l)
		}
		waitExe(t, pid, "/bin/busybox")
		pids = append(pids, pid)
	}
	return pids
}

// testNetnsLimit (bug 11, and bug 12's fixed-size accounting): a network
// namespace holds AUDIT_CONTID_NETNS_MAX containers: one more is refused
// (ENOSPC) on op=set and on setns(), a container already there may add
// tasks, and a slot freed by the last task of a container is free again.
func testNetnsLimit(t *T) {
	needContid(t)
	n := contidNetnsMax + 2
	cmd := exec.Command("/bin/busybox", "sh", "-c",
		`i=0; while [ $i -lt `+itoa(n)+` ]; do /bin/busybox sleep 1000 & echo $!; i=$((i+1)); done; read x`)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	sh := startCmd(t, cmd)
	pids := sleepersIn(t, sh, n)
	defer func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		sh.kill()
	}()
	for i := 0; i < contidNetnsMax; i++ {
		wantErrno(t, "set "+itoa(650+i), writeContid(pids[i], itoa(650+i)), nil)
	}
	over := itoa(650 + contidNetnsMax)
	wantErrno(t, "set "+over+", one container too many", writeContid(pids[contidNetnsMax], over), unix.ENOSPC)
	wantContid(t, pids[contidNetnsMax], unset)
	wantErrno(t, "set 650 again (its container is there)", writeContid(pids[contidNetnsMax], "650"), nil)

	// A task of another container may not join the namespace either.
	j := stub(t, "/bin/busybox", "sh", "-c",
		"exec /bin/busybox nsenter -n -t "+itoa(sh.pid())+" /bin/busybox echo joined 2>&1")
	defer j.kill()
	wantErrno(t, "set 670", writeContid(j.pid(), "670"), nil)
	j.release(t)
	lines, err := j.lines()
	if err == nil || !strings.Contains(strings.Join(lines, "\n"), "No space left") {
		t.Errorf("container 670 joining the full namespace: %v, %q; want ENOSPC", err, lines)
	}

	// The last task of 651 goes: its slot is free.
	syscall.Kill(pids[1], syscall.SIGKILL)
	waitZombie(t, pids[1])
	wantErrno(t, "set "+over+" after 651 left", writeContid(pids[contidNetnsMax+1], over), nil)
}

// testNetfilterMoves (bug 12): the per-namespace accounting follows a task
// that already has a contid into a namespace it makes (unshare) and one
// it joins (setns), and forgets it when it exits.
func testNetfilterMoves(t *T) {
	a := needDaemon(t)
	if _, err := os.Stat(iptables); err != nil {
		t.Skipf("no %s in the initramfs (apt-get install iptables on the host)", iptables)
	}
	script := `/bin/busybox ip link set lo up || exit 1
LD_PRELOAD=/usr/lib/noflock.so ` + iptables + ` iptables -A OUTPUT -p icmp -j AUDIT --type accept || exit 1
echo ready; read y; /bin/busybox ping -c 1 -W 1 127.0.0.1 >/dev/null; echo pinged; read z`
	owner := stub(t, "/bin/busybox", "unshare", "-n", "/bin/busybox", "sh", "-c", script)
	defer owner.kill()
	wantErrno(t, "set 680", writeContid(owner.pid(), "680"), nil)
	owner.release(t)
	waitLine(t, owner, "ready")
	if netns(owner.pid()) == netns(1) {
		t.Fatalf("the owner did not unshare its network namespace")
	}
	m := a.mark()
	if _, err := io.WriteString(owner.stdin, "go\n"); err != nil {
		t.Fatalf("%v", err)
	}
	waitLine(t, owner, "pinged")
	if got := strings.Join(pktEvent(t, a, m), " "); got != "680" {
		t.Errorf("after unshare -n in 680: chains %q, want \"680\"", got)
	}
	// 681 joins with setns (nsenter), pings, and exits.
	j := stub(t, "/bin/busybox", "nsenter", "-n", "-t", itoa(owner.pid()),
		"/bin/busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1")
	defer j.kill()
	wantErrno(t, "set 681", writeContid(j.pid(), "681"), nil)
	m = a.mark()
	j.release(t)
	j.lines()
	if got := strings.Join(pktEvent(t, a, m), " "); got != "680 681" {
		t.Errorf("after 681 joined with setns: chains %q, want \"680 681\"", got)
	}
	m = a.mark()
	run(t, "/bin/busybox", "nsenter", "-n", "-t", itoa(owner.pid()), "/bin/busybox", "ping", "-c", "1", "-W", "1", "127.0.0.1")
	if got := strings.Join(pktEvent(t, a, m), " "); got != "680" {
		t.Errorf("after 681 exited: chains %q, want \"680\"", got)
	}
}

// testCapDescendant (bug 6): the child of a task granted capcontid is no
// orchestrator: it may not set a contid on its own child (v1's children
// inherited the flag).
func testCapDescendant(t *T) {
	needCap(t)
	// the granted shell forks the helper ("; true" keeps sh from exec'ing)
	orchestrate(t, "470", true, "/bin/busybox", "sh", "-c", "/init helper child-write 471 EPERM; true")
}

// auditStatus returns the kernel's lost and backlog counters.
func (a *auditd) auditStatus() (lost, backlog uint32, err error) {
	replies, err := a.requestReplies(a.ctl, auditGet, nil, false)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range replies {
		if len(r) >= 32 {
			return binary.LittleEndian.Uint32(r[24:]), binary.LittleEndian.Uint32(r[28:]), nil
		}
	}
	return 0, 0, fmt.Errorf("no audit status in reply")
}

// testFloodBacklog (bug 2): an unprivileged loop of unshares of every
// namespace type, without rules and with a rule for something else, loses
// no record and never waits on the backlog: it runs as fast as the same
// loop with auditing disabled (v1 logged ~25 records per round and
// stalled every task for backlog_wait_time once the backlog filled).
func testFloodBacklog(t *T) {
	a := needDaemon(t)
	loop := `i=0; while [ $i -lt 50 ]; do /bin/busybox unshare -r -n -u -i /bin/busybox true || exit 1; i=$((i+1)); done; echo done`
	timed := func() time.Duration {
		t0 := time.Now()
		ranLoop(t, startAs(t, 1000, "/bin/busybox", "sh", "-c", loop))
		return time.Since(t0)
	}
	if err := a.setEnabled(0); err != nil {
		t.Fatalf("disabling audit: %v", errnoName(err))
	}
	off := timed()
	if err := a.setEnabled(1); err != nil {
		t.Fatalf("enabling audit: %v", errnoName(err))
	}
	lost0, _, err := a.auditStatus()
	if err != nil {
		t.Fatalf("audit status: %v", err)
	}
	m := a.mark()
	none := timed()
	del := a.addRule(t, "-a always,exit -F arch=b64 -S getppid -k vmtest-flood", "", 0)
	other := timed()
	del()
	lost1, backlog, _ := a.auditStatus()
	fmt.Printf("INFO namespace/flood-backlog: 50 rounds: %.2fs audit off, %.2fs no rules, %.2fs other rule; lost %d, backlog %d\n",
		off.Seconds(), none.Seconds(), other.Seconds(), lost1-lost0, backlog)
	if lost1 != lost0 {
		t.Errorf("%d records lost during unprivileged unshare loops", lost1-lost0)
	}
	for _, d := range []time.Duration{none, other} {
		if d > 2*off+2*time.Second {
			t.Errorf("the loop took %.2fs with auditing on, %.2fs with it off: it waited", d.Seconds(), off.Seconds())
		}
	}
	for _, r := range a.since(m) {
		if r.typ == auditNamespace && field(r.text, "op") != "destroy" {
			t.Errorf("a NAMESPACE record for an unprivileged task without a rule: %v", r)
			break
		}
	}
}

// testKmemleak scans for leaks once every other test is done (a kernel
// built with DEBUG_KMEMLEAK, as make vmtest's is): the reports go to the
// console, where vmtest.sh fails the run on "unreferenced object".
func testKmemleak(t *T) {
	const path = "/sys/kernel/debug/kmemleak"
	if _, err := os.Stat("/sys/kernel/debug"); err == nil {
		_ = unix.Mount("debugfs", "/sys/kernel/debug", "debugfs", 0, "")
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s: kernel without DEBUG_KMEMLEAK", path)
	}
	// objects younger than 5 s are not reported; two scans, as the
	// kernel's documentation advises against transient false positives
	time.Sleep(6 * time.Second)
	for i := 0; i < 2; i++ {
		if err := os.WriteFile(path, []byte("scan"), 0o600); err != nil {
			t.Fatalf("kmemleak scan: %v", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if len(b) > 0 {
		fmt.Print(string(b))
		t.Errorf("kmemleak reports %d leaks", strings.Count(string(b), "unreferenced object"))
	}
}

// testKernelClean checks, after every other test, what the kernel says of
// itself besides the console: no taint (a WARN taints, and a report that
// did not panic would leave its flag), and lockdep still on (it turns
// itself off after its first report, circular or recursive locking, an
// inconsistent lock state, a table overflow).
func testKernelClean(t *T) {
	b, err := os.ReadFile("/proc/sys/kernel/tainted")
	if err != nil {
		t.Fatalf("reading the taint: %v", err)
	}
	if v := strings.TrimSpace(string(b)); v != "0" {
		t.Errorf("the kernel is tainted: /proc/sys/kernel/tainted is %s", v)
	}
	b, err = os.ReadFile("/proc/lockdep_stats")
	if err != nil {
		return // a kernel without lockdep: the taint was all to check
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "debug_locks:" && f[1] != "1" {
			t.Errorf("lockdep turned itself off (debug_locks: %s): it reported a problem, see the console", f[1])
		}
	}
}
