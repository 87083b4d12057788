package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// Program is a compiled rule list. It is immutable: Match may be called from
// any number of goroutines, and a new Program replaces an old one by pointer.
// A nil *Program keeps every event whole.
type Program struct {
	rules []filterRule
	def   Verdict // for events no rule matches
	file  string  // where the rules came from, for Check's errors
}

type filterRule struct {
	cond    cond
	verdict Verdict
	// Where the rule is in its file, and its size in patterns.
	line, col, patterns int
}

// Len returns the number of rules, not counting the default.
func (p *Program) Len() int {
	if p == nil {
		return 0
	}
	return len(p.rules)
}

// Default returns the verdict for events that no rule matches.
func (p *Program) Default() Verdict {
	if p == nil {
		return Verdict{Keep: true}
	}
	return p.def
}

// Parse compiles a standalone rules file: a YAML document whose root is the
// rule list (what a container file holds under rules:). An empty file keeps
// everything. file names the file in errors, which are *Error values (joined
// with errors.Join when there are several).
func Parse(src []byte, file string) (p *Program, err error) {
	// yaml.v3 has panicked on hostile input before; a rules file must never
	// take the daemon down (DESIGN.md, invariant 4).
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, &fileerr.Error{File: file, Msg: fmt.Sprintf("yaml: %v", r)}
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return &Program{def: Verdict{Keep: true}}, nil
		}
		return nil, fileerr.FromYAML(src, file, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, &fileerr.Error{File: file, Line: extra.Line, Col: extra.Column, Msg: "a rules file holds one YAML document"}
	case !errors.Is(err, io.EOF):
		return nil, fileerr.FromYAML(src, file, err)
	}
	return FromNode(&doc, file)
}

// FromNode compiles the rule list in n, the rules: value of a container file
// that the caller parsed with yaml.v3, so errors carry that file's lines. A
// document node is unwrapped; a nil or null node keeps everything.
func FromNode(n *yaml.Node, file string) (*Program, error) {
	c := compiler{fileerr.List{File: file}}
	p := c.program(n)
	if err := c.Err(); err != nil {
		return nil, err
	}
	return p, nil
}
