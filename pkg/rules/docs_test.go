package rules_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// TestDocExamples compiles every YAML example in docs/rules.md: the first is
// a container file, the others rule lists.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/rules.md")
	if err != nil {
		t.Skipf("docs/rules.md not found next to the package: %v", err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(doc, -1)
	if len(blocks) < 5 {
		t.Fatalf("found %d YAML examples, want more", len(blocks))
	}
	for i, b := range blocks {
		src := b[1]
		if i == 0 {
			var file yaml.Node
			if err := yaml.Unmarshal(src, &file); err != nil {
				t.Fatal(err)
			}
			m := file.Content[0]
			for k := 0; k+1 < len(m.Content); k += 2 {
				if m.Content[k].Value == "rules" {
					p, err := rules.FromNode(m.Content[k+1], "web.yaml")
					if err != nil {
						t.Errorf("example %d: %v", i, err)
					}
					// The default limits leave room for a chain of three
					// containers with rules like the example's.
					if err := p.Check(rules.Limits{Rules: rules.DefaultChain.Rules / 3, Patterns: rules.DefaultChain.Patterns / 3}, "a third of the default chain"); err != nil {
						t.Errorf("example %d: %v (size %+v)", i, err, p.Size())
					}
				}
			}
			continue
		}
		if _, err := rules.Parse(src, "example.yaml"); err != nil {
			t.Errorf("example %d:\n%s\n%v", i, src, err)
		}
	}
}

// TestDocErrors checks the error listing in docs/rules.md against the file
// it was made from.
func TestDocErrors(t *testing.T) {
	src := `id: 42
name: web
rules:
  - drop:
      key: noisy-timer
  - keep:
      syscall: [execve, exceve]
      exe: "[a"
    strip: [PROCTITEL]
  - keep:
      sycall: openat
  - default: drop
  - keep:
      type: AVC
`
	var file yaml.Node
	if err := yaml.Unmarshal([]byte(src), &file); err != nil {
		t.Fatal(err)
	}
	_, err := rules.FromNode(file.Content[0].Content[5], "containers/web.yaml")
	doc, rerr := os.ReadFile("../../docs/rules.md")
	if rerr != nil {
		t.Skipf("docs/rules.md not found next to the package: %v", rerr)
	}
	if err == nil || !strings.Contains(string(doc), "```\n"+err.Error()+"\n```") {
		t.Errorf("docs/rules.md does not list these errors:\n%v", err)
	}
}
