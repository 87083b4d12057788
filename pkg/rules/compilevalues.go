package rules

import (
	"math"
	"strconv"
	"strings"

	"github.com/elastic/go-libaudit/v2/auparse"
	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

func (c *compiler) types(n *yaml.Node, what string) []uint16 {
	var out []uint16
	for _, it := range c.items(n, what) {
		s, ok := c.scalar(it, what, "a record type name or a list of them")
		if !ok {
			continue
		}
		t, ok := record.TypeByName(s)
		if !ok {
			c.At(it, "%s: unknown record type %q", what, s)
			continue
		}
		if !containsType(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func containsType(s []uint16, t uint16) bool {
	for _, x := range s {
		if x == t {
			return true
		}
	}
	return false
}

func (c *compiler) syscalls(n *yaml.Node) *syscallSet {
	s := &syscallSet{}
	for _, it := range c.items(n, "syscall") {
		name, ok := c.scalar(it, "syscall", "a syscall name or number, or a list of them")
		if !ok {
			continue
		}
		if nr, err := strconv.ParseUint(name, 10, 32); err == nil {
			s.numbers = insertSorted(s.numbers, uint32(nr))
			continue
		}
		if !s.add(name) {
			c.At(it, "syscall: unknown syscall %q", name)
		}
	}
	return s
}

func (c *compiler) archs(n *yaml.Node) []uint32 {
	var out []uint32
	for _, it := range c.items(n, "arch") {
		name, ok := c.scalar(it, "arch", "an architecture name or a list of them")
		if !ok {
			continue
		}
		a, ok := archByName(name)
		if !ok {
			c.At(it, "arch: unknown architecture %q (want a name such as x86_64, i386 or aarch64)", name)
			continue
		}
		out = append(out, a)
	}
	return out
}

// span is an inclusive range of numeric values.
type span struct{ lo, hi int64 }

func (s span) has(v int64) bool { return s.lo <= v && v <= s.hi }

// unset is the value of an id that was never set, (uid_t)-1.
const unset = math.MaxUint32

// spans compiles a numeric condition: values, or ranges {min: A, max: B}.
// value parses one number as the condition understands it.
func (c *compiler) spans(n *yaml.Node, what string, value func(*yaml.Node, string) (int64, bool)) []span {
	var out []span
	for _, it := range c.items(n, what) {
		if !c.plain(it) {
			continue
		}
		if it.Kind != yaml.MappingNode {
			if v, ok := value(it, what); ok {
				out = append(out, span{v, v})
			}
			continue
		}
		if s, ok := c.rangeSpan(it, what, value); ok {
			out = append(out, s)
		}
	}
	return out
}

func (c *compiler) rangeSpan(n *yaml.Node, what string, value func(*yaml.Node, string) (int64, bool)) (span, bool) {
	s, ok := span{math.MinInt64, math.MaxInt64}, true
	pairs := c.pairs(n)
	if len(pairs) == 0 {
		c.At(n, "%s: a range needs min:, max: or both", what)
		return s, false
	}
	for _, kv := range pairs {
		v, vok := value(kv[1], what)
		switch kv[0].Value {
		case "min":
			s.lo = v
		case "max":
			s.hi = v
		default:
			c.At(kv[0], "%s: unknown key %q in range (want min or max)", what, kv[0].Value)
			ok = false
			continue
		}
		ok = ok && vok
	}
	if ok && s.lo > s.hi {
		c.At(n, "%s: min %d is greater than max %d", what, s.lo, s.hi)
		ok = false
	}
	return s, ok
}

// idValue parses a uid: a decimal number or unset.
func (c *compiler) idValue(n *yaml.Node, what string) (int64, bool) {
	const want = "a number, unset, a range {min: N, max: N}, or a list of them"
	s, ok := c.scalar(n, what, want)
	if !ok {
		return 0, false
	}
	if s == "unset" {
		return unset, true
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		c.At(n, "%s: want %s, got %q", what, want, s)
		return 0, false
	}
	return int64(v), true
}

// exitValue parses a syscall exit value: a decimal number or -ENAME.
func (c *compiler) exitValue(n *yaml.Node, what string) (int64, bool) {
	const want = "a number, an error such as -EACCES, a range {min: N, max: N}, or a list of them"
	s, ok := c.scalar(n, what, want)
	if !ok {
		return 0, false
	}
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	if name, neg := strings.CutPrefix(s, "-"); neg {
		if v, ok := auparse.AuditErrnoToNum[name]; ok {
			return -int64(v), true
		}
	} else if _, ok := auparse.AuditErrnoToNum[s]; ok {
		c.At(n, "%s: write -%s: a call that fails with %s exits with its negative", what, s, s)
		return 0, false
	}
	c.At(n, "%s: want %s, got %q", what, want, s)
	return 0, false
}
