package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testkernel"
)

// TestIntegrationWriteLogsNo runs the daemon with write_logs: no, as
// auditd allows: it registers, loads its rules, rotates on SIGUSR1 and stops
// cleanly, and writes no log.
func TestIntegrationWriteLogsNo(t *testing.T) {
	ctl := testkernel.Take(t)
	dir := t.TempDir()
	prog := privateTrue(t, dir)
	writeConfig(t, dir, "write_logs: no\n", "-D\n"+execRule(prog, testKey("exec")))
	d := start(t, ctl, dir)
	for range 5 {
		must(t, exec.Command(prog).Run())
	}
	d.signal(syscall.SIGUSR1, "rotating the log (SIGUSR1)")
	time.Sleep(200 * time.Millisecond)
	d.stop()
	if _, err := os.Stat(filepath.Dir(d.log)); !os.IsNotExist(err) {
		t.Errorf("write_logs: no made the log directory %s: %v", filepath.Dir(d.log), err)
	}
	st, err := ctl.Status()
	must(t, err)
	if st.PID != 0 {
		t.Errorf("audit pid %d after a clean stop, want 0", st.PID)
	}
}
