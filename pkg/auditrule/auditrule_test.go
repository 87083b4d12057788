package auditrule_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

func TestParse(t *testing.T) {
	src := "# comment\n-D\n-b 8192\n  -a always,exit -F arch=b64 -S execve -F contid=42 -k x\n-e 1\n"
	f, err := auditrule.Parse([]byte(src), "a.rules")
	if err != nil {
		t.Fatal(err)
	}
	if !f.DeleteAll || f.BacklogLimit == nil || *f.BacklogLimit != 8192 || f.Enabled == nil || *f.Enabled != 1 {
		t.Errorf("settings: %+v", f)
	}
	if len(f.Rules) != 1 || f.Rules[0].Line != 4 || !strings.HasPrefix(f.Rules[0].Text, "-a always,exit") {
		t.Fatalf("rules: %+v", f.Rules)
	}
	ne := binary.NativeEndian
	w := f.Rules[0].Wire
	n := ne.Uint32(w[8:]) // field_count
	if got := ne.Uint32(w[268+4*(n-1):]); got != auditrule.FieldContID {
		t.Errorf("last field is %d, want AUDIT_CONTID (%d)", got, auditrule.FieldContID)
	}
}

// TestParseErrors: every bad line is reported with its place, as the one
// positioned error type.
func TestParseErrors(t *testing.T) {
	src := "-a always,exit -S execve\n  -x\n-b 1 2\n-a always,exit -F contid=-1\n"
	_, err := auditrule.Parse([]byte(src), "a.rules")
	for _, want := range []string{"a.rules:2:3: -x is not supported", "a.rules:3:1: -b takes exactly one number", `a.rules:4:1: contid=-1: "-1" is not a container id`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	var fe *fileerr.Error
	if !errors.As(err, &fe) || fe.File != "a.rules" {
		t.Errorf("error %T is not a *fileerr.Error", err)
	}
}

func TestAppendContID(t *testing.T) {
	wire, err := auditrule.Build("-a always,exit -F arch=b64 -S uname")
	if err != nil {
		t.Fatal(err)
	}
	out, err := auditrule.AppendContID(wire, 7, true)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	n := ne.Uint32(out[8:])
	if n != ne.Uint32(wire[8:])+1 || ne.Uint32(out[780+4*(n-1):]) != 0x30000000 || ne.Uint32(out[524+4*(n-1):]) != 8 {
		t.Errorf("contid field not appended as != with an 8-byte value")
	}
	buflen := ne.Uint32(out[1036:])
	if got := ne.Uint64(out[1040+buflen-8:]); got != 7 {
		t.Errorf("value %d in the buffer, want 7", got)
	}
	if _, err := auditrule.AppendContID(wire[:100], 1, false); err == nil {
		t.Error("a short rule was accepted")
	}
}
