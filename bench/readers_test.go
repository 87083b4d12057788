package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// reader is a registered audit daemon under test: the real auditd,
// auditd-ns, or the bare loop.
type reader struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr *os.File
	log    string // the log it writes; empty for the bare loop
	lines  logCounter
}

// auditdConf is the private configuration of the real auditd as the
// kernel's daemon: the same flush mode as auditd-ns, a log in a temporary
// directory that never rotates, no plugins.
const auditdConf = `local_events = yes
write_logs = yes
log_file = %s
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 4096
num_logs = 2
max_log_file_action = IGNORE
space_left = 2
space_left_action = IGNORE
admin_space_left = 1
admin_space_left_action = IGNORE
disk_full_action = IGNORE
disk_error_action = IGNORE
priority_boost = 4
name_format = NONE
use_libwrap = no
distribute_network = no
plugin_dir = %s
q_depth = 2000
end_of_event_timeout = 2
`

// auditdnsConf is auditd-ns's equivalent of auditdConf.
const auditdnsConf = `log_file: %s
log_format: raw
flush: incremental_async
freq: 50
max_log_file: 4096
max_log_file_action: ignore
priority_boost: 4
control_socket: %s/control.sock
state_dir: %s/state
log_level: info
`

// startAuditd runs the real auditd in the foreground as the kernel's
// daemon, inside a private mount namespace with a tmpfs on /run so that
// its pid file stays off the host.
func startAuditd(t testing.TB, ctl *source.Control, dir string) *reader {
	t.Helper()
	r := &reader{log: filepath.Join(dir, "log", "audit.log")}
	must(t, os.MkdirAll(filepath.Join(dir, "log"), 0o700))
	must(t, os.MkdirAll(filepath.Join(dir, "plugins"), 0o700))
	conf := fmt.Sprintf(auditdConf, r.log, filepath.Join(dir, "plugins"))
	must(t, os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(conf), 0o600))
	script := `mount -t tmpfs tmpfs /run && exec "$0" -n -c "$1"`
	r.cmd = exec.Command(lookPath(t, "unshare"), "--mount", "--propagation", "private", "sh", "-c", script, lookPath(t, "auditd"), dir)
	r.start(t, ctl, dir, "")
	return r
}

// startAuditdNS runs auditd-ns (binary) as the kernel's daemon.
// extra is appended to its config.
func startAuditdNS(t testing.TB, ctl *source.Control, dir, binary, extra string) *reader {
	t.Helper()
	r := &reader{log: filepath.Join(dir, "log", "audit.log")}
	cfg := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(cfg, []byte(fmt.Sprintf(auditdnsConf, r.log, dir, dir)+extra), 0o600))
	r.cmd = exec.Command(binary, "run", "--config", cfg)
	r.start(t, ctl, dir, "containers started")
	return r
}

// startBare runs the read-and-discard loop with args.
func startBare(t testing.TB, ctl *source.Control, dir, binary string, args ...string) *reader {
	t.Helper()
	r := &reader{}
	r.cmd = exec.Command(binary, args...)
	r.start(t, ctl, dir, "registered")
	return r
}

// start starts r.cmd and waits until it is the registered audit daemon
// and, when ready is set, its stderr says so.
func (r *reader) start(t testing.TB, ctl *source.Control, dir, ready string) {
	t.Helper()
	var err error
	r.stderr, err = os.Create(filepath.Join(dir, "stderr"))
	must(t, err)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, r.stderr
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	must(t, r.cmd.Start())
	t.Cleanup(func() { r.stop() })
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, err := ctl.Status()
		must(t, err)
		if int(st.PID) == r.cmd.Process.Pid && (ready == "" || strings.Contains(r.stderrText(), ready)) {
			if r.log != "" {
				must(t, r.lines.open(r.log))
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s did not register within 15s: %s", r.cmd.Path, r.stderrText())
}

func (r *reader) stderrText() string {
	b, _ := os.ReadFile(r.stderr.Name())
	return string(b)
}

// stop ends the daemon with SIGTERM (auditd ignores SIGINT), killing it
// after 15 seconds, and returns its exit error.
func (r *reader) stop() error {
	return testaudit.Terminate(r.cmd, 15*time.Second)
}

// counts returns the records the daemon has written so far: those of the
// benchmark's syscalls (key "bench") and all of them. For the bare loop,
// which only says at exit, it is valid after stop.
func (r *reader) counts() (syscalls, records int64) {
	if r.log != "" {
		r.lines.update()
		return r.lines.keyed, r.lines.all
	}
	f := strings.Fields(r.stdout.String())
	if len(f) == 2 {
		syscalls, _ = strconv.ParseInt(f[0], 10, 64)
		records, _ = strconv.ParseInt(f[1], 10, 64)
	}
	return syscalls, records
}

// logCounter counts lines of a growing log, reading only what is new.
type logCounter struct {
	f          *os.File
	keyed, all int64
	carry      []byte
	buf        []byte
}

// benchMarker ends the SYSCALL line of each audited call in a RAW log
// (and in a copy). The kernel's CONFIG_CHANGE records of the rule's
// loading and deletion carry key="bench" too, but not at the end of the
// line: counting them made the count run ahead of the calls, so that a
// run's drain stopped early and left records in the kernel's backlog
// for the next reader.
var benchMarker = []byte("key=\"bench\"\n")

func (c *logCounter) open(path string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.Open(path)
		if err == nil {
			c.f, c.buf = f, make([]byte, 1<<20)
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *logCounter) update() {
	if c.f == nil {
		return
	}
	for {
		n, _ := c.f.Read(c.buf)
		if n == 0 {
			return
		}
		chunk := append(c.carry, c.buf[:n]...)
		last := bytes.LastIndexByte(chunk, '\n')
		c.keyed += int64(bytes.Count(chunk[:last+1], benchMarker))
		c.all += int64(bytes.Count(chunk[:last+1], []byte{'\n'}))
		c.carry = append(c.carry[:0], chunk[last+1:]...)
	}
}

// runTimeout runs cmd, killing it after d, and returns its stdout.
func runTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	c.Env, c.Dir, c.Stdin, c.SysProcAttr = cmd.Env, cmd.Dir, cmd.Stdin, cmd.SysProcAttr
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", cmd.Path, err, stderr.String())
	}
	return out, nil
}

func lookPath(t testing.TB, prog string) string {
	t.Helper()
	if p, err := exec.LookPath(prog); err == nil {
		return p
	}
	for _, dir := range []string{"/sbin", "/usr/sbin"} {
		if p := filepath.Join(dir, prog); fileExists(p) {
			return p
		}
	}
	t.Skipf("%s not found in PATH, /sbin or /usr/sbin (Debian package %s)", prog, debianPackage[prog])
	return ""
}

var debianPackage = map[string]string{"auditd": "auditd", "auditctl": "auditd", "audisp-remote": "audispd-plugins", "unshare": "util-linux"}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
