package hostlog_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// TestOnLine: the hook is given each line once, as the file has it (node=
// included) but without an ENRICHED part; the daemon's own records and
// WriteLine's lines too; and records the log drops (write_logs = no) all
// the same.
func TestOnLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var got []string
	w := open(t, hostlog.Options{Path: path, Node: "web01", Format: hostlog.Enriched, Flush: hostlog.FlushNone,
		OnLine: func(l []byte) { got = append(got, string(l)) }})
	w.Write(record.TypeSyscall, []byte(`audit(1700000000.001:7): arch=c000003e syscall=59 success=yes exit=0 uid=0 key="a`+"\n"+`b"`))
	w.Daemon(record.TypeDaemonStart, "op=start ver=test")
	w.WriteLine([]byte("node=peer type=USER msg=audit(1700000000.002:8): x\x1dUID=\"root\"\r"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := lines(t, path)
	if len(got) != 3 || len(file) != 3 {
		t.Fatalf("hook got %d lines, file has %d, want 3 each:\n%q\n%q", len(got), len(file), got, file)
	}
	for i, l := range got {
		if strings.ContainsAny(l, "\n\r\x00") {
			t.Errorf("line %d given with a line break: %q", i, l)
		}
	}
	// A record's line: the file's up to the ENRICHED separator.
	raw, _, _ := bytes.Cut([]byte(file[0]), []byte{record.Separator})
	if got[0] != string(raw) || !strings.HasPrefix(got[0], "node=web01 type=SYSCALL msg=audit(1700000000.001:7): ") || strings.ContainsRune(got[0], record.Separator) {
		t.Errorf("record: hook %q, file %q", got[0], file[0])
	}
	if !strings.HasPrefix(got[1], "node=web01 type=DAEMON_START msg=audit(") || !strings.HasPrefix(file[1], got[1]) {
		t.Errorf("daemon record: hook %q, file %q", got[1], file[1])
	}
	if got[2] != file[2] {
		t.Errorf("WriteLine: hook %q, file %q", got[2], file[2])
	}

	// write_logs = no: nothing written, every line given.
	got = nil
	d := open(t, hostlog.Options{Discard: true, OnLine: func(l []byte) { got = append(got, string(l)) }})
	d.Write(record.TypeSyscall, payload(1))
	d.WriteLine([]byte("type=USER msg=audit(1700000000.002:8): x"))
	d.Close()
	if len(got) != 2 || got[0] != "type=SYSCALL msg="+string(payload(1)) {
		t.Errorf("discard: hook got %q", got)
	}
}
