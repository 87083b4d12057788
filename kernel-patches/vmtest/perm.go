package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

var tests = []struct {
	name string
	fn   func(*T)
}{
	{"contid/proc-file", testProcFile},
	{"contid/self", testSelf},
	{"contid/set-once", testSetOnce},
	{"contid/owner-reuse", testOwnerReuse},
	{"contid/busy-children", testBusyChildren},
	{"contid/busy-threads", testBusyThreads},
	{"contid/no-cap", testNoCap},
	{"contid/not-descendant", testNotDescendant},
	{"contid/nesting", testNesting},
	{"contid/bad-input", testBadInput},
	{"contid/exited", testExited},
}

func needContid(t *T) {
	if !hasContid() {
		t.Skipf("no /proc/PID/audit_containerid: kernel lacks the contid patches")
	}
}

func testProcFile(t *T) {
	needContid(t)
	fi, err := os.Stat(contidPath(1))
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(contidPath(1))
	if err != nil || string(b) != unset+"\n" {
		t.Errorf("init reads %q (%v), want %q", b, err, unset+"\n")
	}
	if _, err := os.Stat("/proc/1/task/1/audit_containerid"); err != nil {
		t.Errorf("per-thread file: %v", err)
	}
}

func testSelf(t *T) {
	needContid(t)
	wantErrno(t, "set own contid", writeContid(os.Getpid(), "5"), unix.EXDEV)
	wantContid(t, os.Getpid(), unset)
}

func testSetOnce(t *T) {
	needContid(t)
	p := sleeper(t)
	defer p.kill()
	wantErrno(t, "set 100 on child", writeContid(p.pid(), "100"), nil)
	wantContid(t, p.pid(), "100")
	wantErrno(t, "set 100 again", writeContid(p.pid(), "100"), unix.EEXIST)
	wantErrno(t, "set unset", writeContid(p.pid(), unset), unix.EINVAL)
	wantErrno(t, "set 101", writeContid(p.pid(), "101"), unix.EEXIST)
	wantContid(t, p.pid(), "100")
	// The refused 101 left nothing behind: another orchestrator may take it.
	checkHelper(t, start(t, "/init", "helper", "child-write", "101", "success"))
}

func testOwnerReuse(t *T) {
	needContid(t)
	a, b := sleeper(t), sleeper(t)
	defer a.kill()
	defer b.kill()
	wantErrno(t, "set 110 on first child", writeContid(a.pid(), "110"), nil)
	wantErrno(t, "set 110 on second child", writeContid(b.pid(), "110"), nil)
	wantContid(t, b.pid(), "110")
	// Another orchestrator may not take 110.
	h := start(t, "/init", "helper", "child-write", "110", "EEXIST")
	checkHelper(t, h)
}

func testBusyChildren(t *T) {
	needContid(t)
	p := start(t, "/bin/busybox", "sh", "-c", "/bin/busybox sleep 1000 & read x")
	defer p.kill()
	kids := waitChildren(t, p.pid(), 1)
	defer syscall.Kill(kids[0], syscall.SIGKILL)
	wantErrno(t, "set on a task with a child", writeContid(p.pid(), "120"), unix.EBUSY)
	wantContid(t, p.pid(), unset)
}

func testBusyThreads(t *T) {
	needContid(t)
	// A Go program always has several threads.
	p := start(t, "/init", "helper", "wait")
	defer p.kill()
	waitExe(t, p.pid(), "/init")
	waitThreads(t, p.pid(), 2)
	wantErrno(t, "set on a multi-threaded task", writeContid(p.pid(), "130"), unix.EBUSY)
	wantContid(t, p.pid(), unset)
}

func testNoCap(t *T) {
	needContid(t)
	h := startAs(t, 1000, "/init", "helper", "child-write", "140", "EPERM")
	checkHelper(t, h)
}

func testNotDescendant(t *T) {
	needContid(t)
	// The helper may not touch its parent, nor a sibling.
	s := sleeper(t)
	defer s.kill()
	h := start(t, "/init", "helper", "write", "1", "150", "EXDEV")
	checkHelper(t, h)
	h = start(t, "/init", "helper", "write", fmt.Sprint(s.pid()), "150", "EXDEV")
	checkHelper(t, h)
	wantContid(t, s.pid(), unset)
}

func testNesting(t *T) {
	needContid(t)
	p := stub(t, "/init", "helper", "nest", "200", "201")
	defer p.kill()
	wantErrno(t, "set 200 on the stub", writeContid(p.pid(), "200"), nil)
	p.release(t)
	checkHelper(t, p)
	// Its tasks are gone, so 201 and 200 are free for anyone again.
	s := sleeper(t)
	defer s.kill()
	wantErrno(t, "reuse dropped 201", writeContid(s.pid(), "201"), nil)
}

func testBadInput(t *T) {
	needContid(t)
	p := sleeper(t)
	defer p.kill()
	for _, c := range []struct {
		val  string
		want error
	}{
		{"abc", unix.EINVAL},
		{"12abc", unix.EINVAL},
		{"-1", unix.EINVAL},
		{"-5", unix.EINVAL},
		{" 5", unix.EINVAL},
		{"0x10", unix.EINVAL},
		{"18446744073709551616", unix.ERANGE},
		{"99999999999999999999", unix.ERANGE},
		{strings.Repeat("1", 40), unix.EINVAL},
		{"5\n\n", unix.EINVAL},
		{unset, unix.EINVAL},
		{unset + "\n", unix.EINVAL},
	} {
		wantErrno(t, fmt.Sprintf("write %q", c.val), writeContid(p.pid(), c.val), c.want)
	}
	// An empty write sets nothing.
	if err := writeContid(p.pid(), ""); err != nil && err != unix.EINVAL {
		t.Errorf("empty write: %s", errnoName(err))
	}
	// A partial write (not at offset 0) is refused.
	fd, err := unix.Open(contidPath(p.pid()), unix.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	_, err = unix.Pwrite(fd, []byte("7"), 1)
	unix.Close(fd)
	wantErrno(t, "pwrite at offset 1", err, unix.EINVAL)
	wantContid(t, p.pid(), unset)
	// Nothing was created: a helper may take 18446744073709551614, the
	// largest contid, and the values refused above never existed.
	checkHelper(t, start(t, "/init", "helper", "child-write", "18446744073709551614", "success"))
	// A newline-terminated decimal is accepted.
	wantErrno(t, `write "160\n"`, writeContid(p.pid(), "160\n"), nil)
	wantContid(t, p.pid(), "160")
}

func testExited(t *T) {
	needContid(t)
	p := sleeper(t)
	fd, err := unix.Open(contidPath(p.pid()), unix.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer unix.Close(fd)
	p.kill()
	_, err = unix.Write(fd, []byte("170"))
	wantErrno(t, "write to an exited task", err, unix.ESRCH)
	// A zombie (exited, not reaped) is refused too.
	z := sleeper(t)
	syscall.Kill(z.pid(), syscall.SIGKILL)
	waitZombie(t, z.pid())
	wantErrno(t, "write to a zombie", writeContid(z.pid(), "171"), unix.ESRCH)
	z.cmd.Wait()
}
