package hostlog_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

// LineFunc gives the plugins the host log's lines, byte for byte: node=
// prefix, ENRICHED part, breaks inside a record turned into spaces.
func TestLineFuncIsTheLogLine(t *testing.T) {
	recs := []struct {
		typ  uint16
		data string
	}{
		{1300, `audit(1700000000.100:10): arch=c000003e syscall=59 success=yes exit=0 a0=1 ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 key="k"`},
		{1327, "audit(1700000000.100:10): proctitle=7472756500"},
		{1320, "audit(1700000000.100:10): "},
		{1106, "audit(1700000000.200:11): pid=3 uid=0 auid=0 msg='op=x a\nb\rc\x1dd\x00e'"},
	}
	for _, tc := range []struct {
		node   string
		format hostlog.Format
	}{{"", hostlog.Raw}, {"host1", hostlog.Raw}, {"host1", hostlog.Enriched}, {"", hostlog.Enriched}} {
		path := filepath.Join(t.TempDir(), "audit.log")
		w := open(t, hostlog.Options{Path: path, Node: tc.node, Format: tc.format})
		line := hostlog.LineFunc(tc.node, tc.format)
		var want []byte
		for _, r := range recs {
			w.Write(r.typ, []byte(r.data))
			want = line(want, r.typ, []byte(r.data))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if enriched := bytes.Contains(got, []byte("\x1dARCH=x86_64 SYSCALL=execve")); enriched != (tc.format == hostlog.Enriched) {
			t.Errorf("format %v: ENRICHED part %v in %q", tc.format, enriched, got)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("node %q format %v: the log has\n%q\nLineFunc gives\n%q", tc.node, tc.format, got, want)
		}
	}
}
