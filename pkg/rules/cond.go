package rules

import (
	"gopkg.in/yaml.v3"
)

// cond is the compiled conditions of one rule (or one not:). A nil slice is
// a condition the rule does not have; all present ones must hold.
type cond struct {
	types    []uint16 // the event has a record of one of these types
	typeBits uint64   // types folded as view.typeBits folds them
	success  success
	archs    []uint32
	sys      *syscallSet
	exit     []span
	ids      []idCond
	key      []pattern
	exe      []pattern
	path     []pattern
	fields   []fieldCond
	not      *cond
}

type success uint8

const (
	successAny success = iota
	successYes
	successNo
)

// idCond is a uid, auid or euid condition.
type idCond struct {
	field int // fUID, fAUID or fEUID
	spans []span
}

// fieldCond is a field: condition: some record has the field with one of the
// values.
type fieldCond struct {
	name   string
	anchor int
	values []string
}

// conditions is the list of condition keys, for error messages.
const conditions = "type, syscall, arch, key, success, exit, uid, auid, euid, exe, path, field or not"

// conds compiles a mapping of conditions; a null value has none and so
// matches every event.
func (c *compiler) conds(n *yaml.Node, what string) cond {
	var k cond
	if !c.plain(n) || isNull(n) {
		return k
	}
	if n.Kind != yaml.MappingNode {
		c.At(n, "%s: want a mapping of conditions (%s)", what, conditions)
		return k
	}
	for _, kv := range c.pairs(n) {
		key, v := kv[0], kv[1]
		switch name := key.Value; name {
		case "type":
			k.types = nonNil(c.types(v, name))
			for _, t := range k.types {
				k.typeBits |= 1 << (t % 64)
			}
		case "syscall":
			k.sys = c.syscalls(v)
		case "arch":
			k.archs = nonNil(c.archs(v))
		case "success":
			k.success = c.success(v)
		case "exit":
			k.exit = nonNil(c.spans(v, name, c.exitValue))
		case "uid", "auid", "euid":
			spans := nonNil(c.spans(v, name, c.idValue))
			k.ids = append(k.ids, idCond{field: fieldIndex(name), spans: spans})
		case "key", "exe", "path":
			ps := nonNil(c.patterns(v, name))
			switch name {
			case "key":
				k.key = ps
			case "exe":
				k.exe = ps
			case "path":
				k.path = ps
			}
		case "field":
			k.fields = nonNil(c.fields(v))
		case "not":
			if len(v.Content) == 0 && v.Kind == yaml.MappingNode || isNull(v) {
				c.At(v, "not: needs at least one condition")
				continue
			}
			not := c.conds(v, name)
			k.not = &not
		default:
			c.At(key, "unknown condition %q (want %s)", name, conditions)
		}
	}
	return k
}

// nonNil keeps a condition whose values all had errors present, so that a
// broken condition never widens a rule while errors are being collected.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (c *compiler) success(n *yaml.Node) success {
	s, ok := c.scalar(n, "success", "yes or no")
	if !ok {
		return successAny
	}
	switch s {
	case "yes", "true":
		return successYes
	case "no", "false":
		return successNo
	}
	c.At(n, "success: want yes or no, got %q", s)
	return successAny
}

func (c *compiler) fields(n *yaml.Node) []fieldCond {
	if !c.plain(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		c.At(n, "field: want a mapping of field names to values")
		return nil
	}
	var fs []fieldCond
	for _, kv := range c.pairs(n) {
		name := kv[0].Value
		if !validFieldName(name) {
			c.At(kv[0], "field: bad field name %q (no spaces, '=' or '\"')", name)
			continue
		}
		f := fieldCond{name: name, anchor: anchorOf(name)}
		for _, it := range c.items(kv[1], "field "+name) {
			if s, ok := c.scalar(it, "field "+name, "a value or a list of values"); ok {
				f.values = append(f.values, s)
			}
		}
		fs = append(fs, f)
	}
	return fs
}

func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '=' || c == '"' || c >= 0x7f {
			return false
		}
	}
	return true
}
