package rules

import (
	"fmt"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// Size is what a Program costs the router for each event it filters, in
// the worst case (an event that no rule matches, so every rule is tried).
type Size struct {
	// Rules counts the rules, not the default.
	Rules int
	// Patterns counts every value the rules' conditions list: each type,
	// arch, exit value, id range, key, exe and path pattern and field
	// value, and one for each syscall and success condition (a set
	// lookup), not: included; a glob counts GlobCost, and a field: name
	// FieldCost besides its values.
	Patterns int
}

// Add returns the sum of s and o.
func (s Size) Add(o Size) Size { return Size{s.Rules + o.Rules, s.Patterns + o.Patterns} }

// Over reports whether s is beyond l.
func (s Size) Over(l Limits) bool {
	return l.Rules > 0 && s.Rules > l.Rules || l.Patterns > 0 && s.Patterns > l.Patterns
}

// Limits caps a rule set's Size. Zero fields cap nothing.
type Limits struct {
	Rules, Patterns int
}

// GlobCost is what one glob pattern counts in Size.Patterns, and
// FieldCost what one field: name counts on top of its values: matching a
// glob, or finding a field in every record of an event, costs about as
// much as this many exact values (BenchmarkMatchCostly).
const (
	GlobCost  = 8
	FieldCost = 48
)

// The default limits: for one container's rules, and for the rules on one
// chain (a container, those enclosing it and those nested in it), which
// the router tries for one event. BenchmarkRouteWorstRules (pkg/router)
// measures the router's rate under a chain at DefaultChain.
var (
	DefaultContainer = Limits{Rules: 48, Patterns: 96}
	DefaultChain     = Limits{Rules: 64, Patterns: 96}
)

// Size returns p's size; a nil Program has none.
func (p *Program) Size() Size {
	var s Size
	if p == nil {
		return s
	}
	s.Rules = len(p.rules)
	for i := range p.rules {
		s.Patterns += p.rules[i].patterns
	}
	return s
}

// Check returns nil when p fits l, or an *Error at the first rule that
// takes it past a limit, naming the limit: the file and line are those p
// was compiled from. what names the limit in the message (a config key).
func (p *Program) Check(l Limits, what string) error { return p.CheckWithin(Size{}, l, what) }

// CheckWithin is Check for rules that share l with others of size used
// (the other containers on a chain): p may add only what is left.
func (p *Program) CheckWithin(used Size, l Limits, what string) error {
	if p == nil {
		return nil
	}
	s := used
	for i := range p.rules {
		r := &p.rules[i]
		s = s.Add(Size{1, r.patterns})
		switch {
		case l.Rules > 0 && s.Rules > l.Rules:
			return &fileerr.Error{File: p.file, Line: r.line, Col: r.col, Msg: fmt.Sprintf("rule %d brings the rules to %d, more than the %d allowed (%s)", i+1, s.Rules, l.Rules, what)}
		case l.Patterns > 0 && s.Patterns > l.Patterns:
			return &fileerr.Error{File: p.file, Line: r.line, Col: r.col, Msg: fmt.Sprintf("rule %d brings the patterns to %d, more than the %d allowed (%s)", i+1, s.Patterns, l.Patterns, what)}
		}
	}
	return nil
}

// patterns counts k's values as Size does.
func (k *cond) patterns() int {
	n := len(k.types) + len(k.archs) + len(k.exit) + cost(k.key) + cost(k.exe) + cost(k.path)
	if k.sys != nil {
		n++
	}
	if k.success != successAny {
		n++
	}
	for _, id := range k.ids {
		n += len(id.spans)
	}
	for _, f := range k.fields {
		n += FieldCost + len(f.values)
	}
	if k.not != nil {
		n += k.not.patterns()
	}
	return n
}

func cost(ps []pattern) int {
	n := 0
	for i := range ps {
		if ps[i].kind == patternGlob {
			n += GlobCost
		} else {
			n++
		}
	}
	return n
}
