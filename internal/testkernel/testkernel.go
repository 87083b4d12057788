// Package testkernel serialises tests that touch the kernel's audit state and
// puts that state back as it was. The kernel has one audit daemon and one
// rule list, so such tests take a machine-wide lock (across test binaries,
// which go test runs in parallel), save the state first and restore it after:
// pid 0, the saved rules, enabled and the other settings as before.
package testkernel

import (
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// LockPath is the file whose flock serialises kernel tests.
const LockPath = "/run/auditd-ns-test.lock"

// Take skips the test unless it can control the kernel's audit subsystem,
// waits for the machine-wide lock, saves the audit state and registers its
// restoration with t.Cleanup. It returns a control socket for the test.
func Take(t testing.TB) *source.Control {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root with CAP_AUDIT_CONTROL to use the kernel's audit subsystem; running as uid", os.Geteuid())
	}
	f, err := os.OpenFile(LockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("opening the kernel test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("taking the kernel test lock: %v", err)
	}
	ctl, err := source.OpenControl()
	if err != nil {
		f.Close()
		t.Skip("the kernel's audit subsystem is not available:", err)
	}
	st, err := ctl.Status()
	if errors.Is(err, syscall.EPERM) {
		f.Close()
		t.Skip("no CAP_AUDIT_CONTROL: reading audit status was refused")
	}
	if err != nil {
		t.Fatalf("reading audit status: %v", err)
	}
	if st.PID != 0 && syscall.Kill(int(st.PID), 0) == nil {
		f.Close()
		t.Skipf("another audit daemon (pid %d) is registered; these tests need the kernel to themselves", st.PID)
	}
	rules, err := ctl.Rules()
	if err != nil {
		t.Fatalf("saving audit rules: %v", err)
	}
	t.Cleanup(func() {
		defer f.Close()
		restore(t, ctl, st, rules)
		ctl.Close()
	})
	return ctl
}

func restore(t testing.TB, ctl *source.Control, st *source.Status, rules [][]byte) {
	t.Helper()
	k, err := source.OpenKernel()
	if err == nil {
		// Unregisters a daemon the test left behind (dead or alive).
		if err := k.Unregister(); err != nil {
			t.Errorf("restoring audit pid 0: %v", err)
		}
		k.Close()
	}
	if _, err := ctl.DeleteRules(); err != nil {
		t.Errorf("deleting test rules: %v", err)
	}
	for _, r := range rules {
		if err := ctl.AddRule(r); err != nil {
			t.Errorf("restoring a saved rule: %v", err)
		}
	}
	errs := []error{
		ctl.SetBacklogLimit(st.BacklogLimit),
		ctl.SetRateLimit(st.RateLimit),
		ctl.SetBacklogWaitTime(st.BacklogWaitTime),
		ctl.SetFailure(st.Failure),
	}
	if st.Enabled != 2 {
		errs = append(errs, ctl.SetEnabled(st.Enabled))
	}
	if err := errors.Join(errs...); err != nil {
		t.Errorf("restoring audit settings: %v", err)
	}
	now, err := ctl.Status()
	if err == nil && now.PID != 0 {
		t.Errorf("audit pid is %d after restoring, want 0", now.PID)
	}
}
