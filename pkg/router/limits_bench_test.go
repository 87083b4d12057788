package router

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// worstRules is a rules: section within l that no event of BenchmarkRoute
// matches, so the router tries every pattern of it for every event: of
// the costliest conditions, field: ones (each scans every record of the
// event) or path globs (in rules of 4), then as many rules as allowed (each
// costs its own pass), then a default that keeps the event, so every copy
// is also made.
func worstRules(tb testing.TB, kind string, l rules.Limits) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	left, n := l.Patterns, 0
	for kind == "field" && left >= rules.FieldCost+1 && n < l.Rules {
		fmt.Fprintf(&b, "  - drop: {field: {inode: v%d}}\n", n)
		left -= rules.FieldCost + 1
		n++
	}
	for kind == "glob" && left >= rules.GlobCost && n < l.Rules {
		k := min(4, left/rules.GlobCost)
		var vals []string
		for j := range k {
			vals = append(vals, fmt.Sprintf(`"/*/*[a-z]*%d*/*%d-%d*"`, n, n, j))
		}
		fmt.Fprintf(&b, "  - drop: {path: [%s]}\n", strings.Join(vals, ", "))
		left -= k * rules.GlobCost
		n++
	}
	// Then rules of one key each, the last taking the patterns left.
	for ; left > 0 && n < l.Rules; n++ {
		k := 1
		if n == l.Rules-1 {
			k = left
		}
		var keys []string
		for j := range k {
			keys = append(keys, fmt.Sprintf("k%d-%d", n, j))
		}
		fmt.Fprintf(&b, "  - drop: {key: [%s]}\n", strings.Join(keys, ", "))
		left -= k
	}
	b.WriteString("  - default: keep\n")
	p, err := rules.Parse([]byte(strings.TrimPrefix(strings.ReplaceAll(b.String(), "\n  ", "\n"), "rules:\n")), "worst")
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Check(l, "limit"); err != nil {
		tb.Fatalf("the worst rule set is not accepted: %v", err)
	}
	return b.String()
}

// BenchmarkRouteWorstRules is BenchmarkRoute with every container of the
// depth-3 chains holding the costliest rule set the default limits accept
// (rules.DefaultChain split over the chain's three containers, each
// within rules.DefaultContainer): the router's rate under the worst rule
// set a container can have accepted. AUDITD_NS_CHAIN_PATTERNS overrides the
// chain's patterns, to find the limit.
func BenchmarkRouteWorstRules(b *testing.B) {
	chain := rules.DefaultChain
	if v, err := strconv.Atoi(os.Getenv("AUDITD_NS_CHAIN_PATTERNS")); err == nil {
		chain.Patterns = v
	}
	per := rules.Limits{Rules: min(rules.DefaultContainer.Rules, chain.Rules/3), Patterns: min(rules.DefaultContainer.Patterns, chain.Patterns/3)}
	for _, kind := range []string{"field", "glob"} {
		src := worstRules(b, kind, per)
		b.Run(kind, func(b *testing.B) { benchmarkRoute(b, true, src) })
	}
}
