package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped systemd unit passes systemd-analyze verify (with ExecStart
// pointing at the real binary), is Type=notify, and runs the daemon with
// the default config (auditd.conf and auditd-ns.yaml beside it).
func TestSystemdUnit(t *testing.T) {
	src, err := os.ReadFile("../../configs/auditd-ns.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(src)
	for _, want := range []string{"\nType=notify\n", "\nExecStart=/usr/local/sbin/auditd-ns run\n", "\nExecStartPre=/usr/local/sbin/auditd-ns check\n"} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit has no %q", strings.TrimSpace(want))
		}
	}
	for _, l := range strings.Split(unit, "\n") {
		if strings.HasPrefix(l, "Exec") && strings.Contains(l, "--config") {
			t.Errorf("%s: the unit should use the default config, /etc/audit/auditd.conf", l)
		}
	}
	if b, err := os.ReadFile("../../README.md"); err != nil || !strings.Contains(string(b), "systemctl mask auditd") {
		t.Errorf("the README's install steps do not mask auditd (%v)", err)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("needs systemd-analyze (Debian package systemd)")
	}
	path := filepath.Join(t.TempDir(), "auditd-ns.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/sbin/auditd-ns", hookBinary(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
