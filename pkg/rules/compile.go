package rules

import (
	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

type compiler struct{ fileerr.List }

func (c *compiler) program(n *yaml.Node) *Program {
	p := &Program{def: Verdict{Keep: true}, file: c.File}
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return p
		}
		n = n.Content[0]
	}
	if n == nil || isNull(n) {
		return p
	}
	if n.Kind != yaml.SequenceNode {
		if c.plain(n) {
			c.At(n, "rules: want a list of rules (- keep: ..., - drop: ..., - default: ...)")
		}
		return p
	}
	for i, item := range n.Content {
		r, isDefault := c.rule(item)
		if !isDefault {
			r.line, r.col, r.patterns = item.Line, item.Column, r.cond.patterns()
			p.rules = append(p.rules, r)
			continue
		}
		if i != len(n.Content)-1 {
			c.At(item, "default must be the last rule")
		}
		p.def = r.verdict
	}
	return p
}

// rule compiles one list item; isDefault tells a "default:" item.
func (c *compiler) rule(n *yaml.Node) (r filterRule, isDefault bool) {
	if !c.plain(n) {
		return r, false
	}
	if n.Kind != yaml.MappingNode {
		c.At(n, "a rule is a mapping with keep:, drop: or default:")
		return r, false
	}
	var action, value, stripKey, stripValue *yaml.Node
	for _, kv := range c.pairs(n) {
		switch k := kv[0]; k.Value {
		case "keep", "drop", "default":
			if action != nil {
				c.At(k, "a rule has one of keep, drop or default, not both %s and %s", action.Value, k.Value)
				continue
			}
			action, value = k, kv[1]
		case "strip":
			stripKey, stripValue = kv[0], kv[1]
		default:
			c.At(k, "unknown key %q in rule (want keep, drop, default or strip)", k.Value)
		}
	}
	if action == nil {
		c.At(n, "a rule needs keep:, drop: or default:")
		return r, false
	}
	switch action.Value {
	case "default":
		isDefault = true
		if s, ok := c.scalar(value, "default", "keep or drop"); ok {
			switch s {
			case "keep":
				r.verdict.Keep = true
			case "drop":
			default:
				c.At(value, "default: want keep or drop, got %q", s)
			}
		}
	case "keep":
		r.verdict.Keep = true
		r.cond = c.conds(value, "keep")
	case "drop":
		r.cond = c.conds(value, "drop")
	}
	if stripKey != nil {
		r.verdict.Strip = c.strip(stripKey, stripValue, r.verdict.Keep)
	}
	return r, isDefault
}

// strip compiles the value v of the strip: key k.
func (c *compiler) strip(k, v *yaml.Node, keep bool) TypeSet {
	if !keep {
		c.At(k, "strip: only a rule that keeps events can strip records")
		return TypeSet{}
	}
	types := c.types(v, "strip")
	s, ok := NewTypeSet(types...)
	if !ok {
		c.At(v, "strip: at most %d record types", MaxStrip)
	}
	return s
}

// pairs returns the key and value nodes of mapping n, reporting keys that
// are not names and duplicate keys. Values are checked by their users.
func (c *compiler) pairs(n *yaml.Node) [][2]*yaml.Node {
	var out [][2]*yaml.Node
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !c.plain(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			c.At(k, "a key must be a name")
			continue
		}
		if seen[k.Value] {
			c.At(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		out = append(out, [2]*yaml.Node{k, v})
	}
	return out
}

// plain reports whether n is free of what the language does not support
// (aliases, merge keys, custom tags), and reports what it finds.
func (c *compiler) plain(n *yaml.Node) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		c.At(n, "aliases are not supported in rules")
		return false
	case n.Kind == yaml.ScalarNode && n.Tag == "!!merge":
		c.At(n, "merge keys are not supported in rules")
		return false
	case n.Tag != "" && n.Tag != "!" && !knownTag(n.ShortTag()):
		c.At(n, "unsupported tag %s", n.Tag)
		return false
	}
	return true
}

func knownTag(t string) bool {
	switch t {
	case "!!str", "!!int", "!!float", "!!bool", "!!null", "!!map", "!!seq":
		return true
	}
	return false
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// scalar returns the text of a scalar node; what names the key in errors,
// want says what was expected.
func (c *compiler) scalar(n *yaml.Node, what, want string) (string, bool) {
	if !c.plain(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || isNull(n) {
		c.At(n, "%s: want %s", what, want)
		return "", false
	}
	return n.Value, true
}

// items returns the elements of a list, or n alone when it is not a list.
func (c *compiler) items(n *yaml.Node, what string) []*yaml.Node {
	if !c.plain(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return []*yaml.Node{n}
	}
	if len(n.Content) == 0 {
		c.At(n, "%s: empty list", what)
	}
	return n.Content
}
