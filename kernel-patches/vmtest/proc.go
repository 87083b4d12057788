package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// unset is the contid of a task that has none.
const unset = "18446744073709551615"

func contidPath(pid int) string {
	return fmt.Sprintf("/proc/%d/audit_containerid", pid)
}

// hasContid tells whether the running kernel has the contid patches.
func hasContid() bool {
	_, err := os.Stat(contidPath(os.Getpid()))
	return err == nil
}

// writeContid writes val to pid's audit_containerid in one write and
// returns the raw errno (nil on success).
func writeContid(pid int, val string) error {
	fd, err := unix.Open(contidPath(pid), unix.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", contidPath(pid), err)
	}
	defer unix.Close(fd)
	n, err := unix.Write(fd, []byte(val))
	if err != nil {
		return err
	}
	if n != len(val) {
		return fmt.Errorf("short write %d of %d", n, len(val))
	}
	return nil
}

// readContid returns pid's contid as the kernel prints it, without newline.
func readContid(pid int) (string, error) {
	b, err := os.ReadFile(contidPath(pid))
	return strings.TrimSpace(string(b)), err
}

// errnoName renders an error for messages, naming errnos symbolically.
func errnoName(err error) string {
	var e unix.Errno
	if errors.As(err, &e) {
		return unix.ErrnoName(e)
	}
	if err == nil {
		return "success"
	}
	return err.Error()
}

// wantErrno checks that err is exactly want (nil meaning success).
func wantErrno(t *T, what string, err error, want error) {
	if !errors.Is(err, want) && !(err == nil && want == nil) {
		t.Errorf("%s: got %s, want %s", what, errnoName(err), errnoName(want))
	}
}

// wantContid checks pid's contid.
func wantContid(t *T, pid int, want string) {
	got, err := readContid(pid)
	if err != nil {
		t.Errorf("reading contid of %d: %v", pid, err)
		return
	}
	if got != want {
		t.Errorf("contid of pid %d: got %s, want %s", pid, got, want)
	}
}

// proc is a child process started for a test.
type proc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// kill ends the process and reaps it.
func (p *proc) kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// start runs argv with a pipe on stdin and stdout.
func start(t *T, argv ...string) *proc {
	return startCmd(t, exec.Command(argv[0], argv[1:]...))
}

func newProc(cmd *exec.Cmd, stdin io.WriteCloser, stdout io.Reader) *proc {
	return &proc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

// sleeper starts a single-threaded child that does nothing.
func sleeper(t *T) *proc {
	return start(t, "/bin/busybox", "sleep", "1000")
}

// stub starts a single-threaded shell that waits for a line on stdin and
// then execs argv, so that a test can set its contid first.
func stub(t *T, argv ...string) *proc {
	args := append([]string{"/bin/busybox", "sh", "-c", `read x; exec "$@"`, "sh"}, argv...)
	p := start(t, args...)
	waitExe(t, p.pid(), "/bin/busybox")
	return p
}

// release lets a stub exec its command.
func (p *proc) release(t *T) {
	if _, err := io.WriteString(p.stdin, "go\n"); err != nil {
		t.Fatalf("releasing stub %d: %v", p.pid(), err)
	}
}

// lines reads the process's output until EOF and waits for it.
func (p *proc) lines() ([]string, error) {
	var out []string
	for {
		l, err := p.out.ReadString('\n')
		if l != "" {
			out = append(out, strings.TrimRight(l, "\n"))
		}
		if err != nil {
			break
		}
	}
	return out, p.cmd.Wait()
}

// waitExe waits until pid runs exe (an exec has completed).
func waitExe(t *T, pid int, exe string) {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); l == exe {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d never ran %s", pid, exe)
}

// childrenOf lists the pids whose parent is ppid.
func childrenOf(ppid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			kids = append(kids, pid)
		}
	}
	return kids
}

// waitChildren waits until pid has n children and returns them.
func waitChildren(t *T, pid, n int) []int {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if kids := childrenOf(pid); len(kids) >= n {
			return kids
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("pid %d never had %d children", pid, n)
	return nil
}

func capPath(pid int) string {
	return fmt.Sprintf("/proc/%d/audit_capcontainerid", pid)
}

// writeFile writes val to path in one write and returns the raw errno.
func writeFile(path, val string) error {
	fd, err := unix.Open(path, unix.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, err = unix.Write(fd, []byte(val))
	return err
}
