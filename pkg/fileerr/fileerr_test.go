package fileerr_test

import (
	"errors"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

func TestError(t *testing.T) {
	for e, want := range map[*fileerr.Error]string{
		{File: "a.yaml", Msg: "m"}:                  "a.yaml: m",
		{File: "a.yaml", Line: 3, Msg: "m"}:         "a.yaml:3: m",
		{File: "a.yaml", Line: 3, Col: 7, Msg: "m"}: "a.yaml:3:7: m",
	} {
		if got := e.Error(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestList(t *testing.T) {
	l := fileerr.List{File: "c.yaml"}
	if l.Err() != nil {
		t.Fatal("an empty list is an error")
	}
	l.At(&yaml.Node{Line: 2, Column: 4}, "bad %s", "key")
	var e *fileerr.Error
	if err := l.Err(); !errors.As(err, &e) || err.Error() != "c.yaml:2:4: bad key" {
		t.Errorf("one problem: %v", err)
	}
	l.AtPos(5, 1, "second")
	if err := l.Err(); err.Error() != "c.yaml:2:4: bad key\nc.yaml:5:1: second" {
		t.Errorf("two problems: %q", err)
	}
}

// TestFromYAML: a syntax error gets its line; a byte YAML refuses, which
// yaml.v3 reports without a place, gets its line and column.
func TestFromYAML(t *testing.T) {
	src := []byte("a: [1,\nb: 2\n")
	err := yaml.Unmarshal(src, new(any))
	if e := fileerr.FromYAML(src, "s.yaml", err); e.Line == 0 || e.File != "s.yaml" {
		t.Errorf("syntax error: %v", e)
	}
	src = []byte("a: 1\nb: x\x01y\n")
	err = yaml.Unmarshal(src, new(any))
	if e := fileerr.FromYAML(src, "s.yaml", err); e.Line != 2 || e.Col != 5 {
		t.Errorf("control byte: %+v", e)
	}
}
