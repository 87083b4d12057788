package test

import (
	"bufio"
	"bytes"
	le "encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// netlinkMsg is one audit netlink message of type typ.
func netlinkMsg(typ uint16, flags uint16, payload string) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(payload)+1)
	b = append(b, payload...)
	b = append(b, 0)
	le.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	le.NativeEndian.PutUint16(b[4:], typ)
	le.NativeEndian.PutUint16(b[6:], flags)
	return b
}

// TestUserMessageHelper sends one user message (AUDIT_USER) to the kernel
// from a cgroup: run as a child process of the tests below.
func TestUserMessageHelper(t *testing.T) {
	text := os.Getenv("AUDITD_NS_USER_MSG")
	if text == "" {
		t.Skip("sends a user message for TestIntegrationUserMessageSeparators, run as a child process")
	}
	if cg := os.Getenv("AUDITD_NS_CGROUP"); cg != "" {
		must(t, os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644))
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	must(t, err)
	defer unix.Close(fd)
	must(t, unix.Sendto(fd, netlinkMsg(1005, unix.NLM_F_REQUEST|unix.NLM_F_ACK, text), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}))
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	must(t, err)
	if n >= 20 && le.NativeEndian.Uint16(buf[4:]) == unix.NLMSG_ERROR {
		if errno := int32(le.NativeEndian.Uint32(buf[16:])); errno != 0 {
			t.Fatalf("the kernel refused the user message: %v", unix.Errno(-errno))
		}
	}
}

// TestIntegrationUserMessageSeparators: a process in a container sends a
// user message whose text holds 0x1d and CR (the kernel logs a user
// message's text verbatim). In the ENRICHED host log and in the
// container's copy they are replaced, so ausearch reads the record's own
// auid rather than one the text forged.
func TestIntegrationUserMessageSeparators(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	cg := makeCgroup(t, "/sys/fs/cgroup/unified", fmt.Sprintf("auditd-ns-sep-%d", os.Getpid()))
	containerFile(t, dir, "a", fmt.Sprintf("name: a\ncgroup: %s\ndeliver: {file: %s/a/audit.log}\n", cg, dir))
	writeConfig(t, dir, fmt.Sprintf("log_format: enriched\ncontainers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir), "-D\n")
	d := start(t, ctl, dir)
	key := fmt.Sprintf("harden-sep-%d", os.Getpid())
	cmd := exec.Command(os.Args[0], "-test.run=^TestUserMessageHelper$")
	cmd.Env = append(os.Environ(), "AUDITD_NS_CGROUP="+cg, "AUDITD_NS_USER_MSG=op="+key+" a\x1dAUID=\"forged\" uid=7\x1dX b\rc")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sending the user message: %v\n%s", err, out)
	}
	copyLog := filepath.Join(dir, "a", "audit.log")
	waitFor(t, 10*time.Second, func() bool { b, _ := os.ReadFile(copyLog); return bytes.Contains(b, []byte(key)) }, "the copy in the container's file")
	d.stop()
	for _, f := range []struct {
		path       string
		separators int // the ENRICHED host log has its own, once
	}{{d.log, 1}, {copyLog, 0}} {
		line := lineWith(t, f.path, key)
		if n := strings.Count(line, "\x1d"); n != f.separators || strings.Contains(line, "\r") {
			t.Errorf("%s: %d separators (want %d) or a CR in %q", f.path, n, f.separators, line)
		}
		if !strings.Contains(line, " a AUID=\"forged\" uid=7 X b c'") {
			t.Errorf("%s: the message's text is not kept with spaces in place: %q", f.path, line)
		}
		out := ausearch(t, f.path, "-i", "-m", "USER")
		if !strings.Contains(out, key) || strings.Contains(out, "auid=forged") || !strings.Contains(out, " auid=") {
			t.Errorf("%s: ausearch -i reads the user message as:\n%s", f.path, out)
		}
	}
}

// lineWith returns the first line of path that contains s.
func lineWith(t *testing.T, path, s string) string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return sc.Text()
		}
	}
	t.Fatalf("%s has no line with %q", path, s)
	return ""
}

// auditSockets returns the netlink ports of pid's NETLINK_AUDIT sockets.
func auditSockets(t *testing.T, pid int) []uint32 {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	must(t, err)
	for _, fd := range fds {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	b, err := os.ReadFile("/proc/net/netlink")
	must(t, err)
	var ports []uint32
	for _, l := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 10 || f[1] != strconv.Itoa(unix.NETLINK_AUDIT) || !inodes[f[9]] {
			continue
		}
		p, err := strconv.ParseUint(f[2], 10, 32)
		must(t, err)
		ports = append(ports, uint32(p))
	}
	return ports
}

// TestIntegrationForeignNetlinkSender: a root process (CAP_NET_ADMIN)
// sends a forged record to the daemon's audit sockets. The kernel lets it
// (unicast between audit sockets needs only CAP_NET_ADMIN); the daemon
// drops it because it did not come from port 0, counts it, and says so
// in the host log.
func TestIntegrationForeignNetlinkSender(t *testing.T) {
	kctl := testkernel.Take(t)
	dir := t.TempDir()
	writeConfig(t, dir, "", "-D\n")
	d := start(t, kctl, dir)
	ports := auditSockets(t, d.cmd.Process.Pid)
	if len(ports) == 0 {
		t.Fatal("found no audit netlink socket of the daemon in /proc/net/netlink")
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	must(t, err)
	defer unix.Close(fd)
	forged := fmt.Sprintf("audit(1700000000.000:4242): pid=1 uid=0 auid=0 ses=1 msg='op=forged-%d'", os.Getpid())
	for _, p := range ports {
		if err := unix.Sendto(fd, netlinkMsg(1100, 0, forged), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: p}); err != nil {
			t.Fatalf("sending to the daemon's port %d: %v", p, err)
		}
	}
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(d.stderrText(), "did not come from the kernel") }, "the daemon to report the dropped message")
	// Only the receiving socket counts; the control socket drops a foreign
	// reply on its own.
	out, err := ctl(t, dir, "status")
	var n int
	if m := regexp.MustCompile(`, (\d+) foreign messages dropped`).FindStringSubmatch(out); m != nil {
		n, _ = strconv.Atoi(m[1])
	}
	if err != nil || n < 1 || n > len(ports) {
		t.Errorf("ctl status counts %d dropped messages, want 1 to %d: %v\n%s", n, len(ports), err, out)
	}
	d.stop()
	b, err := os.ReadFile(d.log)
	must(t, err)
	if bytes.Contains(b, []byte("op=forged-")) {
		t.Errorf("the forged record reached the host log")
	}
	if !bytes.Contains(b, []byte("op=foreign-netlink dropped=")) {
		t.Errorf("the host log does not record the dropped message")
	}
}
