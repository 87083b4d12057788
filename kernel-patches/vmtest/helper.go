package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runHelper runs one helper role, started by a test as "/init helper ROLE
// ARGS...". It reports each check on stdout as "ok WHAT" or "bad WHAT" and
// returns the exit code.
func runHelper(args []string) int {
	if len(args) == 0 {
		fmt.Println("bad helper: no role")
		return 2
	}
	h := helper{}
	switch args[0] {
	case "child-write":
		// child-write VALUE WANT: start a child and write VALUE to it.
		h.childWrite(args[1], args[2])
	case "write":
		// write PID VALUE WANT
		pid, _ := strconv.Atoi(args[1])
		h.expect("write "+args[2]+" to "+args[1], writeContid(pid, args[2]), args[3])
	case "wait":
		// wait: block until stdin closes.
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "nest-run":
		// nest-run NEW ARGV...: run ARGV in nested container NEW.
		h.nestRun(args[1], args[2:])
	case "userns-run":
		// userns-run ARGV...: run ARGV as root of a new user namespace.
		h.usernsRun(args[1:])
	case "child-capwrite":
		// child-capwrite WANT: start a child and grant it capcontid.
		c := h.sleeper()
		if c != nil {
			h.expect("grant capcontid", writeFile(capPath(c.Process.Pid), "1"), args[1])
			reap(c)
		}
	case "usermsg":
		// usermsg TEXT: send an AUDIT_USER message.
		fd, err := nlSocket()
		if err == nil {
			a := &auditd{ctl: fd}
			err = a.request(fd, auditUser, append([]byte(args[1]), 0))
		}
		h.expect("send user message", err, "success")
	case "kill":
		// kill PID: send SIGTERM with kill(2).
		pid, _ := strconv.Atoi(args[1])
		h.expect("kill "+args[1], syscall.Kill(pid, syscall.SIGTERM), "success")
	case "bench":
		// bench N ROUNDS: time N audited syscalls, ROUNDS times.
		n, _ := strconv.Atoi(args[1])
		rounds, _ := strconv.Atoi(args[2])
		bench(n, rounds)
	case "deep-bench":
		// deep-bench D MAX BASE N: bench at the end of a chain (overhead.go).
		d, _ := strconv.Atoi(args[1])
		max, _ := strconv.Atoi(args[2])
		base, _ := strconv.Atoi(args[3])
		n, _ := strconv.Atoi(args[4])
		h.deepBench(d, max, base, n)
	case "netns-bench":
		// netns-bench N: time N network namespace creations.
		n, _ := strconv.Atoi(args[1])
		benchNetns(n)
	case "nest":
		// nest MINE NEW [TAKEN]: a nested orchestrator in container
		// MINE; TAKEN is the errno for a contid in use elsewhere
		// (EEXIST, or EPERM for a delegated orchestrator).
		taken := "EEXIST"
		if len(args) > 3 {
			taken = args[3]
		}
		h.nest(args[1], args[2], taken)
	case "open-wait":
		// open-wait PATH: open PATH for writing, say "fd N", wait
		// until stdin closes.
		fd, err := unix.Open(args[1], unix.O_WRONLY, 0)
		h.expect("open "+args[1], err, "success")
		if err == nil {
			fmt.Printf("fd %d\n", fd)
			_, _ = io.Copy(io.Discard, os.Stdin)
		}
	case "child-read":
		// child-read WANT: start a child and read its contid.
		c := h.sleeper()
		if c != nil {
			_, err := os.ReadFile(contidPath(c.Process.Pid))
			h.expect("read contid of own child", unwrapPathErr(err), args[1])
			reap(c)
		}
	case "ptrace":
		// ptrace PID: attach to PID and detach again.
		pid, _ := strconv.Atoi(args[1])
		h.ptrace(pid)
	case "deep":
		// deep D MAX BASE: nest one level deeper (see limits.go).
		d, _ := strconv.Atoi(args[1])
		max, _ := strconv.Atoi(args[2])
		base, _ := strconv.Atoi(args[3])
		h.deep(d, max, base)
	case "hammer":
		// hammer VALUE SECONDS: write VALUE to new children until it
		// is accepted (it is in use elsewhere until then); say how
		// many refusals it took.
		secs, _ := strconv.Atoi(args[2])
		h.hammer(args[1], time.Duration(secs)*time.Second)
	default:
		fmt.Printf("bad helper: unknown role %q\n", args[0])
		return 2
	}
	if h.bad {
		return 1
	}
	return 0
}

type helper struct{ bad bool }

func (h *helper) check(ok bool, format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	if ok {
		fmt.Println("ok " + what)
		return
	}
	h.bad = true
	fmt.Println("bad " + what)
}

// expect checks that err has the errno named want ("success" for none).
func (h *helper) expect(what string, err error, want string) {
	got := errnoName(err)
	h.check(got == want, "%s: got %s, want %s", what, got, want)
}

func (h *helper) sleeper() *exec.Cmd {
	cmd := exec.Command("/bin/busybox", "sleep", "1000")
	if err := cmd.Start(); err != nil {
		h.check(false, "starting sleeper: %v", err)
		return nil
	}
	return cmd
}

func reap(cmd *exec.Cmd) {
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (h *helper) contidIs(pid int, want string) {
	got, err := readContid(pid)
	h.check(err == nil && got == want, "contid of %d: got %q (%v), want %s", pid, got, err, want)
}

func (h *helper) childWrite(val, want string) {
	c := h.sleeper()
	if c == nil {
		return
	}
	defer reap(c)
	h.expect("write "+val+" to own child", writeContid(c.Process.Pid, val), want)
}

// nest acts as an orchestrator running inside container mine: it gives
// its children the nested contid next, then checks what it may not do.
func (h *helper) nest(mine, next, taken string) {
	self := os.Getpid()
	h.contidIs(self, mine)
	h.expect("set own contid", writeContid(self, next), "EXDEV")
	a := h.sleeper()
	if a == nil {
		return
	}
	defer reap(a)
	h.contidIs(a.Process.Pid, mine) // inherited on fork
	h.expect("nest "+next+" in "+mine, writeContid(a.Process.Pid, next), "success")
	h.contidIs(a.Process.Pid, next)
	h.expect("set again", writeContid(a.Process.Pid, next+"1"), "EEXIST")
	b := h.sleeper()
	if b == nil {
		return
	}
	defer reap(b)
	h.expect("reuse own "+next, writeContid(b.Process.Pid, next), "success")
	h.expect("reuse outer "+mine, writeContid(self, mine), "EXDEV")
	c := h.sleeper()
	if c == nil {
		return
	}
	defer reap(c)
	h.expect("take the enclosing contid "+mine, writeContid(c.Process.Pid, mine), taken)
	fmt.Printf("child %d\n", a.Process.Pid)
}

// nestRun starts argv in a stub, gives it contid next and lets it run.
func (h *helper) nestRun(next string, argv []string) {
	args := append([]string{"sh", "-c", `read x; exec "$@"`, "sh"}, argv...)
	cmd := exec.Command("/bin/busybox", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		h.check(false, "stdin pipe: %v", err)
		return
	}
	cmd.Stdout = os.Stdout
	if err := cmd.Start(); err != nil {
		h.check(false, "starting %v: %v", argv, err)
		return
	}
	pid := cmd.Process.Pid
	for i := 0; i < 500; i++ {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); l == "/bin/busybox" {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.expect("nest "+next, writeContid(pid, next), "success")
	fmt.Printf("child %d\n", pid)
	_, _ = in.Write([]byte("go\n"))
	in.Close()
	h.check(cmd.Wait() == nil, "child %v ran", argv)
}

// usernsRun runs argv in a new user namespace where it is root (uid 0
// mapped to uid 0), so it has CAP_AUDIT_CONTROL only in that namespace.
func (h *helper) usernsRun(argv []string) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	err := cmd.Run()
	h.check(err == nil, "user namespace child %v: %v", argv, err)
}

// unwrapPathErr returns the errno inside an *os.PathError.
func unwrapPathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// ptrace attaches to pid (a PTRACE_ATTACH the kernel audits with an
// OBJ_PID record of the target) and detaches again.
func (h *helper) ptrace(pid int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err := unix.PtraceAttach(pid)
	h.expect("ptrace attach "+strconv.Itoa(pid), err, "success")
	if err != nil {
		return
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
	h.expect("ptrace detach", unix.PtraceDetach(pid), "success")
}

// hammer is a second orchestrator that keeps trying a contid another one
// holds, so that its refusals race the holder's last task exiting.
func (h *helper) hammer(val string, limit time.Duration) {
	refused := 0
	deadline := time.Now().Add(limit)
	fmt.Println("started")
	for time.Now().Before(deadline) {
		c := h.sleeper()
		if c == nil {
			return
		}
		err := writeContid(c.Process.Pid, val)
		reap(c)
		switch errnoName(err) {
		case "success":
			h.check(true, "took %s after %d refusals", val, refused)
			return
		case "EEXIST":
			refused++
		default:
			h.check(false, "write %s: %s", val, errnoName(err))
			return
		}
	}
	h.check(false, "%s never became free (%d refusals): its drop was lost", val, refused)
}
