package rules_test

import (
	"fmt"
	"strings"
	"testing"
)

// costlyRules writes n rules of one costly kind, none of which matches the
// execve event, each with per patterns, so that every rule and pattern is
// tried.
func costlyRules(kind string, n, per int) string {
	var b strings.Builder
	for i := range n {
		var vals []string
		for j := range per {
			switch kind {
			case "path-glob":
				// Stars that scan each segment, a class, and a last
				// segment that never matches.
				vals = append(vals, fmt.Sprintf(`"/*/*[a-z]*%d*/*%d-%d*"`, i, i, j))
			case "field":
				vals = append(vals, fmt.Sprintf(`"v%d-%d"`, i, j))
			case "key-glob":
				vals = append(vals, fmt.Sprintf(`"*e*x*%d-%d*"`, i, j))
			case "exe-glob":
				vals = append(vals, fmt.Sprintf(`"/usr/*/*%d-%d*"`, i, j))
			}
		}
		switch kind {
		case "path-glob":
			fmt.Fprintf(&b, "- drop: {path: [%s]}\n", strings.Join(vals, ", "))
		case "field":
			fmt.Fprintf(&b, "- drop: {field: {inode: [%s]}}\n", strings.Join(vals, ", "))
		case "key-glob":
			fmt.Fprintf(&b, "- drop: {key: [%s]}\n", strings.Join(vals, ", "))
		case "exe-glob":
			fmt.Fprintf(&b, "- drop: {exe: [%s]}\n", strings.Join(vals, ", "))
		}
	}
	b.WriteString("- default: keep\n")
	return b.String()
}

// BenchmarkMatchCostly measures the cost of one pattern of each costly
// kind against the 7-record execve event, every rule tried.
func BenchmarkMatchCostly(b *testing.B) {
	ev := execEvent(b)
	for _, kind := range []string{"path-glob", "field", "key-glob", "exe-glob"} {
		for _, shape := range []struct{ n, per int }{{256, 4}, {64, 16}} {
			b.Run(fmt.Sprintf("%s/%dx%d", kind, shape.n, shape.per), func(b *testing.B) {
				p := mustParse(b, costlyRules(kind, shape.n, shape.per))
				if v, i := p.MatchRule(ev); !v.Keep || i != -1 {
					b.Fatalf("got %v by rule %d, want the default", v, i)
				}
				b.ReportAllocs()
				for b.Loop() {
					p.Match(ev)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(p.Size().Patterns), "ns/pattern")
			})
		}
	}
}
