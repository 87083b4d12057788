package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// netns creates a network namespace with its loopback up, removed after.
func netns(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (Debian package iproute2)")
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("bringing lo up in %s: %v\n%s", name, err, out)
	}
	return "/run/netns/" + name
}

// waitAccepting waits until something accepts TCP connections at addr.
func waitAccepting(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "a listener at "+addr)
}

func port(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tenantAuditd runs the real auditd with local_events = no, listening on
// 127.0.0.1:port inside network namespace ns, in a private mount namespace
// with its own /run so its pid and state files stay off the host. It does
// not touch the kernel's audit state (local_events = no, -s nochange).
func tenantAuditd(t *testing.T, ns string, port int) string {
	t.Helper()
	auditd, err := exec.LookPath("auditd")
	if err != nil {
		t.Skip("needs the real auditd (Debian package auditd)")
	}
	dir := t.TempDir()
	conf := testaudit.TenantAuditdConf(filepath.Join(dir, "audit.log"), port, filepath.Join(dir, "plugins"))
	must(t, os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "plugins"), 0o700))
	script := fmt.Sprintf("mount --make-rprivate / && mount -t tmpfs tmpfs /run && mkdir -p /run/netns && exec %s -n -s nochange -c %s", auditd, dir)
	cmd := exec.Command("ip", "netns", "exec", filepath.Base(ns), "unshare", "--mount", "sh", "-c", script)
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	cmd.Stdout, cmd.Stderr = errf, errf
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	waitFor(t, 10*time.Second, func() bool {
		return exec.Command("ip", "netns", "exec", filepath.Base(ns), "sh", "-c", fmt.Sprintf("exec 3<>/dev/tcp/127.0.0.1/%d", port)).Run() == nil ||
			listening(ns, port)
	}, "the tenant auditd to listen")
	return filepath.Join(dir, "audit.log")
}

// listening checks /proc/net/tcp inside ns for a listener on port.
func listening(ns string, port int) bool {
	out, err := exec.Command("ip", "netns", "exec", filepath.Base(ns), "cat", "/proc/net/tcp", "/proc/net/tcp6").Output()
	if err != nil {
		return false
	}
	return strings.Contains(strings.ToUpper(string(out)), fmt.Sprintf(":%04X 00000000:0000 0A", port)) ||
		strings.Contains(strings.ToUpper(string(out)), fmt.Sprintf(":%04X 00000000000000000000000000000000:0000 0A", port))
}

// TestIntegrationNested is host auditd-ns → auditd-ns in listener mode (in
// container P's network namespace) → the real auditd (container C, nested
// in P, in its own network namespace). C gets only its subtree, P gets P's
// and C's, the host log has all. Attribution is by cgroup (stock kernel).
func TestIntegrationNested(t *testing.T) {
	needTools(t)
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	id := fmt.Sprint(os.Getpid())
	nsC := netns(t, "ans-c-"+id)
	cgP := makeCgroup(t, "/sys/fs/cgroup/unified", "auditd-ns-p-"+id)
	cgC := makeCgroup(t, cgP, "c")
	portP, portC := port(t), port(t)
	cLog := tenantAuditd(t, nsC, portC)

	// P: auditd-ns in listener mode inside P's network namespace, with C
	// registered with it.
	pdir := filepath.Join(dir, "p")
	must(t, os.MkdirAll(filepath.Join(pdir, "containers"), 0o700))
	must(t, os.WriteFile(filepath.Join(pdir, "containers", "c.yaml"), []byte(fmt.Sprintf(
		"name: c\ncgroup: %s\ndeliver: {remote: 127.0.0.1:%d, netns: %s}\n", cgC, portC, nsC)), 0o600))
	must(t, os.WriteFile(filepath.Join(pdir, "auditd-ns.yaml"), []byte(fmt.Sprintf(
		"local_events: no\nlisten: {address: 127.0.0.1:%d}\nlog_file: %s/log/audit.log\ncontainers_dir: %s/containers\nstate_dir: %s/state\nlog_level: debug\ncontrol_socket: %s/control.sock\n",
		portP, pdir, pdir, pdir, pdir)), 0o600))
	// P's daemon shares the host's network and pid namespaces here (a
	// host-network container), so that on a stock kernel it can attribute
	// records to C by cgroup with the process-events connector, which
	// answers only in the initial network namespace. Delivery into C's own
	// namespace exercises the netns dialer.
	p := exec.Command(binary, "run", "--config", filepath.Join(pdir, "auditd-ns.yaml"))
	perr, _ := os.Create(filepath.Join(pdir, "stderr"))
	p.Stderr = perr
	watchRaces(t, perr.Name())
	must(t, p.Start())
	t.Cleanup(func() { p.Process.Kill(); p.Wait() })
	waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", portP))

	// The host: P registered by cgroup, delivered into P's namespace.
	prog := privateTrue(t, dir)
	key := testKey("exec")
	containerFile(t, dir, "p", fmt.Sprintf("name: p\ncgroup: %s\ndeliver: {remote: 127.0.0.1:%d}\n", cgP, portP))
	writeConfig(t, dir, fmt.Sprintf("containers_dir: %s/containers\nstate_dir: %s/state\n", dir, dir), "-D\n"+execRule(prog, key))
	d := start(t, ctl, dir)
	busyHost(t)
	runIn(t, cgP, prog, 3)
	runIn(t, cgC, prog, 4)
	for _, tc := range []struct {
		name, file string
		want       int
	}{
		{"C (real auditd)", cLog, 4},
		{"P (auditd-ns listener)", filepath.Join(pdir, "log/audit.log"), 7},
	} {
		var got int
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if got = ausearchCount(t, tc.file, "-k", key); got >= tc.want {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got != tc.want {
			b, _ := os.ReadFile(filepath.Join(pdir, "stderr"))
			t.Errorf("%s: ausearch -k %s found %d events, want %d\nP's stderr:\n%s", tc.name, key, got, tc.want, b)
		}
	}
	d.stop()
	if got := ausearchCount(t, d.log, "-k", key); got != 7 {
		t.Errorf("host log: %d events, want 7", got)
	}
}
