package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
)

// need skips the test unless it runs as root and every named program is
// installed; it returns their paths.
func need(t testing.TB, progs ...string) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to run %s in a private mount namespace", strings.Join(progs, ", "))
	}
	paths := map[string]string{}
	for _, p := range progs {
		path, err := exec.LookPath(p)
		if err != nil {
			for _, dir := range []string{"/sbin", "/usr/sbin"} {
				if _, serr := os.Stat(filepath.Join(dir, p)); serr == nil {
					path, err = filepath.Join(dir, p), nil
					break
				}
			}
		}
		if err != nil {
			t.Skipf("%s not found in PATH, /sbin or /usr/sbin (Debian package %s)", p, debianPackage[p])
		}
		paths[p] = path
	}
	return paths
}

// debianPackage names the package that installs each program used.
var debianPackage = map[string]string{
	"auditd": "auditd", "ausearch": "auditd", "audisp-remote": "audispd-plugins", "unshare": "util-linux",
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tenantAuditd is a real auditd with local_events = no, listening on
// Port, run in a private mount namespace with its own tmpfs on /run so its
// pid and state files stay off the host. It never talks to the kernel's
// audit state: -s nochange, and local_events = no skips registration.
type tenantAuditd struct {
	t       testing.TB
	bin     string
	unshare string
	Dir     string // holds auditd.conf and the log directory
	Log     string
	Port    int
	// LogFS, when set, is the size of a tmpfs mounted over the log
	// directory inside the namespace (for disk-full tests); the log is
	// copied to Log when auditd ends.
	LogFS  string
	cmd    *exec.Cmd
	stderr bytes.Buffer
}

func newTenantAuditd(t testing.TB) *tenantAuditd {
	t.Helper()
	return newTenantAuditdFS(t, "")
}

// newTenantAuditdFS starts a tenant auditd whose log directory is a tmpfs
// of size logFS, or a plain directory when logFS is empty.
func newTenantAuditdFS(t testing.TB, logFS string) *tenantAuditd {
	t.Helper()
	bins := need(t, "auditd", "unshare", "ausearch")
	dir := t.TempDir()
	a := &tenantAuditd{t: t, bin: bins["auditd"], unshare: bins["unshare"], Dir: dir, Log: filepath.Join(dir, "log", "audit.log"), Port: freePort(t), LogFS: logFS}
	for _, d := range []string{"log", "plugins"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	conf := testaudit.TenantAuditdConf(a.Log, a.Port, filepath.Join(dir, "plugins"))
	if err := os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	a.Start()
	t.Cleanup(a.Stop)
	return a
}

// Start runs auditd and waits until it accepts connections.
func (a *tenantAuditd) Start() {
	a.t.Helper()
	script := `mount -t tmpfs tmpfs /run && exec "$0" -n -s nochange -c "$1"`
	if a.LogFS != "" {
		// The shell stays to copy the log out of the private tmpfs.
		script = `set -e; mount -t tmpfs tmpfs /run; mount -t tmpfs -o size="$2" tmpfs "$1/log"
"$0" -n -s nochange -c "$1" & pid=$!
trap 'kill -TERM $pid' TERM
wait $pid || wait $pid || true
cp "$1/log/audit.log" "$1/final.log"`
		a.Log = filepath.Join(a.Dir, "final.log")
	}
	a.cmd = exec.Command(a.unshare, "--mount", "--propagation", "private", "sh", "-c", script, a.bin, a.Dir, a.LogFS)
	a.stderr.Reset()
	a.cmd.Stdout, a.cmd.Stderr = &a.stderr, &a.stderr
	if err := a.cmd.Start(); err != nil {
		a.t.Fatalf("starting auditd: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", a.Port), time.Second)
		if err == nil {
			c.Close()
			// tcp_max_per_addr = 1: let auditd see this probe close.
			time.Sleep(100 * time.Millisecond)
			return
		}
		if time.Now().After(deadline) {
			a.Stop()
			a.t.Fatalf("auditd never listened on port %d: %s", a.Port, a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends auditd with SIGTERM, which flushes its log.
func (a *tenantAuditd) Stop() { testaudit.Terminate(a.cmd, 10*time.Second) }

// Addr is where the tenant listens.
func (a *tenantAuditd) Addr() string { return fmt.Sprintf("127.0.0.1:%d", a.Port) }

// Search returns the record lines ausearch finds in the log.
func (a *tenantAuditd) Search() []string {
	a.t.Helper()
	out, err := exec.Command(need(a.t, "ausearch")["ausearch"], "--input", a.Log, "--raw").Output()
	if err != nil {
		a.t.Fatalf("ausearch --input %s --raw: %v", a.Log, err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// audispRemote returns a command that runs the real audisp-remote with
// input on stdin, sending to 127.0.0.1:port. audisp-remote 3.0.9 takes no
// options and always reads /etc/audit/audisp-remote.conf, so the command
// bind-mounts a private configuration over that path inside a private
// mount namespace; the host's file is untouched.
func audispRemote(t testing.TB, port int, input []byte) *exec.Cmd {
	t.Helper()
	bins := need(t, "audisp-remote", "unshare")
	dir := t.TempDir()
	conf := filepath.Join(dir, "audisp-remote.conf")
	if err := os.WriteFile(conf, []byte(testaudit.AudispRemoteConf(port, filepath.Join(dir, "queue"), 500000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/audit/audisp-remote.conf"); err != nil {
		t.Skipf("no /etc/audit/audisp-remote.conf to mount over: %v", err)
	}
	cmd := testaudit.AudispRemote(context.Background(), bins["audisp-remote"], conf)
	cmd.Stdin = bytes.NewReader(input)
	return cmd
}

// InNamespace returns path as seen inside the tenant's mount namespace.
func (a *tenantAuditd) InNamespace(path string) string {
	return fmt.Sprintf("/proc/%d/root%s", a.cmd.Process.Pid, path)
}
