package daemon

import (
	"fmt"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// checkRuleLimits checks the rules of the container called name in tree,
// or prog as its new rules when prog is not nil, against the configured
// limits: its own size, and the size of every chain through it (what the
// router tries for one event). The error names the rule that goes past,
// with its file and line.
func (d *Daemon) checkRuleLimits(tree *registry.Tree, name string, prog *rules.Program) error {
	c := tree.ByName(name)
	if c == nil {
		return nil
	}
	if prog == nil {
		prog = c.Rules
	}
	lim := d.cfg().RuleLimits
	if err := prog.Check(lim.Container, "max_rules, max_rule_patterns"); err != nil {
		return err
	}
	size := func(x *registry.Container) rules.Size { return x.Rules.Size() }
	// The others on its chains: those enclosing it, and the heaviest path
	// of those nested in it.
	var used rules.Size
	for _, a := range tree.Ancestors(c) {
		used = used.Add(size(a))
	}
	var below rules.Size
	for _, x := range tree.Subtree(name) {
		var s rules.Size
		for y := x; y != nil && y.Name != name; y = tree.ByName(y.Parent) {
			s = s.Add(size(y))
		}
		below.Rules, below.Patterns = max(below.Rules, s.Rules), max(below.Patterns, s.Patterns)
	}
	used = used.Add(below)
	what := fmt.Sprintf("max_chain_rules, max_chain_patterns; the containers enclosing %q and nested in it hold %d rules, %d patterns", name, used.Rules, used.Patterns)
	return prog.CheckWithin(used, lim.Chain, what)
}
