package rules

import "github.com/auditd-ns/auditd-ns/pkg/record"

// Match returns the verdict of the first rule whose conditions all hold for
// ev, or the default. It does not allocate and does not modify ev. A nil
// Program keeps every event whole.
func (p *Program) Match(ev *record.Event) Verdict {
	v, _ := p.MatchRule(ev)
	return v
}

// MatchRule is Match that also returns the index of the rule that decided,
// or -1 for the default (and for a nil Program).
func (p *Program) MatchRule(ev *record.Event) (Verdict, int) {
	if p == nil {
		return Verdict{Keep: true}, -1
	}
	v := view{ev: ev}
	return p.match(&v)
}

func (p *Program) match(v *view) (Verdict, int) {
	for i := range p.rules {
		if p.rules[i].cond.match(v) {
			return p.rules[i].verdict, i
		}
	}
	return p.def, -1
}

// MatchScan is MatchRule for the event that s was last Reset with, reusing
// what earlier calls on s read from it.
func (p *Program) MatchScan(s *Scan) (Verdict, int) {
	if p == nil {
		return Verdict{Keep: true}, -1
	}
	if s.v.ev == nil {
		s.v.ev = &noEvent
	}
	return p.match(&s.v)
}

// noEvent is what a Scan that was never Reset holds; it is never modified.
var noEvent record.Event

// match reports whether all of c's conditions hold, cheapest first.
func (c *cond) match(v *view) bool {
	if c.types != nil && (v.typeBits()&c.typeBits == 0 || !hasType(v.ev, c.types)) {
		return false
	}
	if c.success != successAny && !c.matchSuccess(v) {
		return false
	}
	if (c.archs != nil || c.sys != nil) && !c.matchArchSyscall(v) {
		return false
	}
	if c.exit != nil && !matchNumber(v, fExit, c.exit) {
		return false
	}
	for i := range c.ids {
		if !matchNumber(v, c.ids[i].field, c.ids[i].spans) {
			return false
		}
	}
	if c.key != nil && !matchString(v, fKey, c.key) {
		return false
	}
	if c.exe != nil && !matchString(v, fExe, c.exe) {
		return false
	}
	if c.path != nil && !matchPath(v, c.path) {
		return false
	}
	for i := range c.fields {
		if !c.fields[i].match(v) {
			return false
		}
	}
	return c.not == nil || !c.not.match(v)
}

func hasType(ev *record.Event, types []uint16) bool {
	for i := range ev.Records {
		for _, t := range types {
			if ev.Records[i].Type == t {
				return true
			}
		}
	}
	return false
}

func (c *cond) matchSuccess(v *view) bool {
	b, ok := v.field(fSuccess)
	if !ok {
		return false
	}
	if c.success == successYes {
		return string(b) == "yes"
	}
	return string(b) == "no"
}

func (c *cond) matchArchSyscall(v *view) bool {
	arch, ok := v.arch()
	if !ok {
		return false
	}
	if c.archs != nil && !contains(c.archs, arch) {
		return false
	}
	if c.sys == nil {
		return true
	}
	nr, ok := v.number(fSyscall)
	return ok && nr >= 0 && nr <= 1<<32-1 && c.sys.has(arch, uint32(nr))
}

func matchNumber(v *view, f int, spans []span) bool {
	n, ok := v.number(f)
	if !ok {
		return false
	}
	for _, s := range spans {
		if s.has(n) {
			return true
		}
	}
	return false
}

func matchString(v *view, f int, ps []pattern) bool {
	b, ok := v.field(f)
	if !ok {
		return false
	}
	d, ok := decodeValue(b)
	if !ok {
		return false
	}
	if f == fKey {
		return matchKey(ps, d)
	}
	return matchValue(ps, d)
}

// matchPath matches the name= of each PATH record.
func matchPath(v *view, ps []pattern) bool {
	for i := range v.ev.Records {
		if v.ev.Records[i].Type != record.TypePath {
			continue
		}
		b, ok := v.find(i, "name", 0)
		if !ok {
			continue
		}
		if d, ok := decodeValue(b); ok && matchValue(ps, d) {
			return true
		}
	}
	return false
}

// match reports whether some record of ev has the field with one of the
// values, compared with the value's quotes removed, or decoded when the
// value is in hex.
func (f *fieldCond) match(v *view) bool {
	for i := range v.ev.Records {
		b, ok := v.find(i, f.name, f.anchor)
		if !ok {
			continue
		}
		u := record.Unquote(b)
		hex := len(u) == len(b) && isHex(b)
		for _, want := range f.values {
			if string(u) == want || hex && len(b) == 2*len(want) && hexHasPrefix(b, want) {
				return true
			}
		}
	}
	return false
}
