package record_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-libaudit/v2/auparse"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func TestAppendLine(t *testing.T) {
	for _, tc := range []struct {
		node string
		typ  uint16
		data string
		want string
	}{
		{"", 1300, "audit(1.002:3): a=1", "type=SYSCALL msg=audit(1.002:3): a=1\n"},
		{"host1", 1320, "audit(1.002:3): ", "node=host1 type=EOE msg=audit(1.002:3): \n"},
		// The patches' types keep names ausearch does not know, so that it
		// keeps them in their event (see TypeName).
		{"", 1340, "audit(1.002:3): record=1300 contid=42,^7", "type=UNKNOWN[1340] msg=audit(1.002:3): record=1300 contid=42,^7\n"},
		{"", 1020, "audit(1.002:3): op=set", "type=UNKNOWN[1020] msg=audit(1.002:3): op=set\n"},
		{"", 1341, "audit(1.002:3): op=create", "type=UNKNOWN[1341] msg=audit(1.002:3): op=create\n"},
		{"", 1999, "audit(1.002:3): x", "type=UNKNOWN[1999] msg=audit(1.002:3): x\n"},
		{"", 1300, "audit(1.002:3): a=\"x\ny\"\x00z", "type=SYSCALL msg=audit(1.002:3): a=\"x y\" z\n"},
		// A user message's text is the sender's: a separator would end the
		// record for auparse, a CR would hide the rest on a terminal.
		{"", 1005, "audit(1.002:3): pid=1 msg='a\x1dAUID=\"root\" b\rc'", "type=USER msg=audit(1.002:3): pid=1 msg='a AUID=\"root\" b c'\n"},
	} {
		if got := string(record.AppendLine(nil, tc.node, tc.typ, []byte(tc.data))); got != tc.want {
			t.Errorf("AppendLine(%q, %d, %q)\n got %q\nwant %q", tc.node, tc.typ, tc.data, got, tc.want)
		}
	}
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line, node, data, enriched string
		typ                        uint16
	}{
		{"type=SYSCALL msg=audit(1.002:3): a=1\n", "", "audit(1.002:3): a=1", "", 1300},
		{"node=h1 type=EOE msg=audit(1.002:3): ", "h1", "audit(1.002:3): ", "", 1320},
		{"type=UNKNOWN[1340] msg=audit(1.002:3): record=1300 contid=42", "", "audit(1.002:3): record=1300 contid=42", "", 1340},
		{"type=CONTAINER_ID msg=audit(1.002:3): contid=42", "", "audit(1.002:3): contid=42", "", 1340},
		{"type=SYSCALL msg=audit(1.002:3): uid=0\x1dUID=\"root\"", "", "audit(1.002:3): uid=0", `UID="root"`, 1300},
	} {
		l, err := record.ParseLine([]byte(tc.line))
		if err != nil || string(l.Node) != tc.node || string(l.Data) != tc.data || string(l.Enriched) != tc.enriched || l.Type != tc.typ {
			t.Errorf("ParseLine(%q) = node %q type %d data %q enriched %q, %v", tc.line, l.Node, l.Type, l.Data, l.Enriched, err)
		}
	}
	for line, want := range map[string]string{
		"":                           `at byte 0: does not start with "type="`,
		"node=h1":                    `at byte 7: no " " after node=`,
		"node=h1 msg=audit(1.1:1):":  `at byte 8: does not start with "type="`,
		"type=SYSCALL audit(1.1:1)":  `at byte 5: no " msg=" after the type`,
		"type=NOPE msg=audit(1.1:1)": "at byte 5: unknown record type name",
	} {
		_, err := record.ParseLine([]byte(line))
		if !errors.Is(err, record.ErrLine) || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("ParseLine(%q) = %v, want ...%s", line, err, want)
		}
	}
}

func TestLineNoAllocs(t *testing.T) {
	line := []byte("node=h1 type=SYSCALL msg=audit(1700000000.042:77): arch=c000003e pid=5")
	n := testing.AllocsPerRun(100, func() {
		l, _ := record.ParseLine(line)
		record.LineTime(l.Data)
		for f := record.NewFields(l.Data); f.Next(); {
			_ = f.Name()
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per line, want 0", n)
	}
}

// FuzzLine: what AppendLine writes, ParseLine reads back, whatever the
// payload holds.
func FuzzLine(f *testing.F) {
	f.Add("h1", uint16(1300), []byte("audit(1.002:3): a=1"))
	f.Add("", uint16(1340), []byte("audit(1.002:3): contid=1\x1dX=y\nz"))
	f.Fuzz(func(t *testing.T, node string, typ uint16, data []byte) {
		if strings.ContainsAny(node, " \n\r\x00\x1d") {
			return // the daemon's own setting, never a record's
		}
		line := record.AppendLine(nil, node, typ, data)
		l, err := record.ParseLine(line)
		if err != nil {
			t.Fatalf("ParseLine(%q): %v", line, err)
		}
		// AppendLine turns each line break of data into a space, a
		// trailing newline too: the data keeps its length.
		if l.Type != typ || string(l.Node) != node || len(l.Data) != len(data) || l.Enriched != nil {
			t.Fatalf("%q: got node %q type %d data %q", line, l.Node, l.Type, l.Data)
		}
	})
}

func TestLineTime(t *testing.T) {
	for line, want := range map[string][2]uint64{
		"type=SYSCALL msg=audit(1699999999.250:77): x": {1699999999, 250},
		"audit(1.5:1): x":            {0, 0},
		"msg=audit(12.007:1): x":     {12, 7},
		"type=X msg=audit(1.1000:1)": {0, 0},
		"type=X msg=audit(1.100)":    {0, 0},
	} {
		sec, msec, ok := record.LineTime([]byte(line))
		if ok != (want != [2]uint64{}) || sec != want[0] || uint64(msec) != want[1] {
			t.Errorf("LineTime(%q) = %d, %d, %v; want %v", line, sec, msec, ok, want)
		}
	}
	if got := string(record.AppendTime(nil, 12, 7)); got != "12.007" {
		t.Errorf("AppendTime = %q", got)
	}
}

func TestFields(t *testing.T) {
	text := []byte(`a=1 word key="x y=z" b= c=3`)
	var got []string
	for f := record.NewFields(text); f.Next(); {
		if v := text[f.Offset() : f.Offset()+len(f.Value())]; !bytes.Equal(v, f.Value()) {
			t.Errorf("offset %d of %s is wrong", f.Offset(), f.Name())
		}
		got = append(got, fmt.Sprintf("%s=%s@%d", f.Name(), f.Value(), f.Offset()))
	}
	want := `a=1@2 key="x y=z"@13 b=@23 c=3@26`
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
	for name, span := range map[string][2]int{"key": {13, 20}, "c": {26, 27}, "b": {23, 23}} {
		s, e, ok := record.FieldSpan(text, name)
		if !ok || s != span[0] || e != span[1] {
			t.Errorf("FieldSpan(%s) = %d, %d, %v; want %v", name, s, e, ok, span)
		}
	}
	if _, _, ok := record.FieldSpan(text, "y"); ok {
		t.Error("found a field inside a quoted value")
	}
}

func TestDaemonText(t *testing.T) {
	suffix := fmt.Sprintf(" auid=%d pid=%d", record.LoginUID(), os.Getpid())
	for got, want := range map[string]string{
		record.DaemonText("resume", "", true):                     "op=resume" + suffix + " res=success",
		record.DaemonText("kernel-lost", "lost=3", false):         "op=kernel-lost lost=3" + suffix + " res=failed",
		record.DaemonEndText():                                    fmt.Sprintf("op=terminate auid=%d uid=%d ses=4294967295 pid=%d res=success", record.LoginUID(), os.Getuid(), os.Getpid()),
		record.DaemonStartText("1", "raw", "6.12"):                fmt.Sprintf("op=start ver=1 format=raw kernel=6.12 auid=%d pid=%d uid=%d ses=4294967295 res=success", record.LoginUID(), os.Getpid(), os.Getuid()),
		record.DaemonStartText("(devel) 0123abcd", "raw", "6.12"): fmt.Sprintf("op=start ver=(devel)-0123abcd format=raw kernel=6.12 auid=%d pid=%d uid=%d ses=4294967295 res=success", record.LoginUID(), os.Getpid(), os.Getuid()),
	} {
		if got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
	at := time.Unix(1700000000, 42e6)
	if got := string(record.AppendPayload(nil, at, 9, "op=x")); got != "audit(1700000000.042:9): op=x" {
		t.Errorf("AppendPayload = %q", got)
	}
}

// TestTypeConstants: the constants are distinct and libaudit names the
// standard ones as their comments do.
func TestTypeConstants(t *testing.T) {
	seen := map[uint16]string{}
	for name, typ := range map[string]uint16{
		"TRUSTED_APP": record.TypeTrustedApp, "DAEMON_START": record.TypeDaemonStart,
		"DAEMON_END": record.TypeDaemonEnd, "DAEMON_ABORT": record.TypeDaemonAbort,
		"DAEMON_CONFIG": record.TypeDaemonConfig, "DAEMON_ROTATE": record.TypeDaemonRotate,
		"DAEMON_RESUME": record.TypeDaemonResume, "DAEMON_ERR": record.TypeDaemonErr,
		"SYSCALL": record.TypeSyscall, "PATH": record.TypePath, "OBJ_PID": record.TypeObjPID,
		"EOE": record.TypeEOE, "REPLACE": record.TypeReplace,
		"CONTAINER_OP": record.TypeContainerOp, "CONTAINER_ID": record.TypeContainerID,
		"NAMESPACE": record.TypeNamespace,
	} {
		if other, ok := seen[typ]; ok {
			t.Errorf("%s and %s are both %d", name, other, typ)
		}
		seen[typ] = name
		if typ == record.TypeContainerOp || typ == record.TypeContainerID || typ == record.TypeNamespace {
			continue
		}
		if got := auparse.AuditMessageType(typ).String(); got != name {
			t.Errorf("libaudit names %d %s, want %s", typ, got, name)
		}
	}
}

func TestCleanReceived(t *testing.T) {
	for in, want := range map[string]string{
		"type=SYSCALL msg=audit(1.1:1): uid=0\x1dUID=\"root\" AUID=\"x\"": "type=SYSCALL msg=audit(1.1:1): uid=0\x1dUID=\"root\" AUID=\"x\"",
		"type=USER msg=audit(1.1:1): msg='a\x1dAUID=\"forged\" b\rc'":     "type=USER msg=audit(1.1:1): msg='a?AUID=\"forged\" b?c'",
		"type=USER msg=audit(1.1:1): a\x1db\x1dUID=\"root\"":              "type=USER msg=audit(1.1:1): a?b\x1dUID=\"root\"",
		"type=USER msg=audit(1.1:1): a\x00b\nc":                           "type=USER msg=audit(1.1:1): a?b?c",
	} {
		b := []byte(in)
		changed := record.CleanReceived(b)
		if string(b) != want || changed != (in != want) {
			t.Errorf("CleanReceived(%q) = %q, %v; want %q", in, b, changed, want)
		}
	}
}
