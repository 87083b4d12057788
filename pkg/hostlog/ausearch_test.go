package hostlog_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

// TestAusearchKeepsPatchRecordsInTheirEvent writes an event as the patched
// kernel sends it (CONTAINER_ID, then SYSCALL, PROCTITLE and EOE) and a
// namespace change, and asks the real ausearch for each event by its
// serial: every record must come back in its event, none on its own.
func TestAusearchKeepsPatchRecordsInTheirEvent(t *testing.T) {
	if _, err := exec.LookPath("ausearch"); err != nil {
		t.Skip("needs ausearch (Debian package auditd):", err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	w := open(t, hostlog.Options{Path: path})
	for _, r := range []struct {
		typ  uint16
		data string
	}{
		{1340, "audit(1700000000.100:10): record=1300 contid=42,^7"},
		{1341, "audit(1700000000.100:10): op=create nstype=net inode=4026532290 parent_inode=0"},
		{1300, `audit(1700000000.100:10): arch=c000003e syscall=272 success=yes exit=0 a0=40000000 a1=0 a2=0 a3=0 items=0 ppid=1 pid=100 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="unshare" exe="/usr/bin/unshare" key="k"`},
		{1327, "audit(1700000000.100:10): proctitle=756E7368617265"},
		{1320, "audit(1700000000.100:10): "},
		{1020, "audit(1700000000.200:11): op=set opid=100 contid=43 old-contid=-1"},
		{1340, "audit(1700000000.300:12): record=1300 contid=43"},
		{1300, `audit(1700000000.300:12): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=100 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="true" exe="/usr/bin/true" key="k"`},
		{1320, "audit(1700000000.300:12): "},
	} {
		if err := w.Write(r.typ, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for serial, want := range map[string]int{"10": 5, "11": 1, "12": 3} {
		out, err := exec.Command("ausearch", "-if", path, "-a", serial).CombinedOutput()
		if err != nil {
			t.Fatalf("ausearch -a %s: %v\n%s", serial, err, out)
		}
		events := strings.Split(strings.TrimPrefix(strings.TrimSpace(string(out)), "----"), "----")
		if len(events) != 1 || strings.Count(events[0], "\ntype=") != want {
			t.Errorf("ausearch -a %s gave %d events, want one of %d records:\n%s", serial, len(events), want, out)
		}
	}
}
