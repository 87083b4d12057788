package rules

import (
	"bytes"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxGlob is the longest glob pattern accepted, in bytes. Exact and
// prefix patterns, which cost a comparison, may be longer.
const MaxGlob = 256

// pattern is one value of a key, exe or path condition.
type pattern struct {
	kind patternKind
	s    string
	glob glob // for patternGlob
}

type patternKind uint8

const (
	patternExact patternKind = iota + 1
	patternPrefix
	patternGlob
)

// patterns compiles a string condition: each item is a glob (path.Match
// syntax; without *, ? or [ it is an exact match), or a mapping with one of
// exact:, prefix: or glob:.
func (c *compiler) patterns(n *yaml.Node, what string) []pattern {
	var out []pattern
	for _, it := range c.items(n, what) {
		if !c.plain(it) {
			continue
		}
		if it.Kind == yaml.MappingNode {
			if p, ok := c.patternMap(it, what); ok {
				out = append(out, p)
			}
			continue
		}
		s, ok := c.scalar(it, what, "a string, {prefix: S}, {exact: S}, {glob: S}, or a list of them")
		if !ok {
			continue
		}
		if p, ok := c.globPattern(it, what, s); ok {
			out = append(out, p)
		}
	}
	return out
}

func (c *compiler) patternMap(n *yaml.Node, what string) (pattern, bool) {
	pairs := c.pairs(n)
	if len(pairs) != 1 {
		c.At(n, "%s: want one of exact:, prefix: or glob:", what)
		return pattern{}, false
	}
	k, v := pairs[0][0], pairs[0][1]
	s, ok := c.scalar(v, what+" "+k.Value, "a string")
	if !ok {
		return pattern{}, false
	}
	switch k.Value {
	case "exact":
		return pattern{kind: patternExact, s: s}, true
	case "prefix":
		return pattern{kind: patternPrefix, s: s}, true
	case "glob":
		return c.globPattern(v, what, s)
	}
	c.At(k, "%s: unknown key %q (want exact, prefix or glob)", what, k.Value)
	return pattern{}, false
}

func (c *compiler) globPattern(n *yaml.Node, what, s string) (pattern, bool) {
	if !strings.ContainsAny(s, `*?[\`) {
		return pattern{kind: patternExact, s: s}, true
	}
	if len(s) > MaxGlob {
		// Matching costs up to the glob's length for each byte of a name.
		c.At(n, "%s: glob of %d bytes, longer than the %d allowed (use prefix: or exact: for long values)", what, len(s), MaxGlob)
		return pattern{}, false
	}
	g, err := compileGlob(s)
	if err != nil {
		c.At(n, "%s: bad glob %q: %v", what, s, err)
		return pattern{}, false
	}
	return pattern{kind: patternGlob, s: s, glob: g}, true
}

func (p *pattern) match(b []byte) bool {
	switch p.kind {
	case patternExact:
		return string(b) == p.s
	case patternPrefix:
		return bytes.HasPrefix(b, []byte(p.s))
	}
	return p.glob.match(b)
}

// matchHex matches the bytes the hex string h encodes, without decoding
// them, for exact and prefix patterns.
func (p *pattern) matchHex(h []byte) (matched, decided bool) {
	n := len(h) / 2
	switch p.kind {
	case patternExact:
		return n == len(p.s) && hexHasPrefix(h, p.s), true
	case patternPrefix:
		return n >= len(p.s) && hexHasPrefix(h, p.s), true
	}
	return false, false
}

func hexHasPrefix(h []byte, s string) bool {
	for i := 0; i < len(s); i++ {
		if hexByte(h, i) != s[i] {
			return false
		}
	}
	return true
}

// matchValue matches an untrusted-string value against any of ps.
func matchValue(ps []pattern, d decoded) bool {
	if !d.hex {
		for i := range ps {
			if ps[i].match(d.b) {
				return true
			}
		}
		return false
	}
	for i := range ps {
		if m, decided := ps[i].matchHex(d.b); decided {
			if m {
				return true
			}
			continue
		}
		return matchDecoded(ps[i:], d.b)
	}
	return false
}

// matchDecoded decodes the hex string h into a stack buffer and matches the
// bytes against any of ps. It is apart so that Match pays for the buffer
// only when a glob meets a hex value.
//
//go:noinline
func matchDecoded(ps []pattern, h []byte) bool {
	var buf [1024]byte
	b := decodeHex(buf[:0], h)
	for i := range ps {
		if ps[i].match(b) {
			return true
		}
	}
	return false
}

// matchKey matches a key= value: several keys of one kernel rule are joined
// with \x01 (and so written in hex); it matches when any key does.
func matchKey(ps []pattern, d decoded) bool {
	if !d.hex {
		return matchKeys(ps, d.b)
	}
	return matchHexKey(ps, d.b)
}

//go:noinline
func matchHexKey(ps []pattern, h []byte) bool {
	var buf [1024]byte
	return matchKeys(ps, decodeHex(buf[:0], h))
}

func matchKeys(ps []pattern, b []byte) bool {
	for {
		k, rest, more := bytes.Cut(b, []byte{0x01})
		for j := range ps {
			if ps[j].match(k) {
				return true
			}
		}
		if !more {
			return false
		}
		b = rest
	}
}
