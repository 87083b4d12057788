package registry_test

import (
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// TestSpecRoundTrip: what Spec writes, Parse reads back; WithRules and
// WithBeneath change one key and keep the rest.
func TestSpecRoundTrip(t *testing.T) {
	rn, err := registry.RulesNode([]byte("- drop: {type: PATH}\n"), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := registry.Spec{Name: "a", ID: "42", File: "/var/log/t/a/audit.log", Memory: "1MiB", Owner: "oci-hook", Rules: rn, Comment: "made by a test"}
	src, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(src), "# made by a test\n") {
		t.Errorf("no comment line:\n%s", src)
	}
	c, err := registry.Parse(src, "a.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if c.Name != "a" || c.ID != 42 || c.Deliver.File != "/var/log/t/a/audit.log" || c.Queue.Memory != 1<<20 || c.Owner != "oci-hook" || c.Rules.Len() != 1 {
		t.Errorf("read back %+v", c)
	}
	c2, err := c.WithRules([]byte("- keep: {type: SYSCALL}\n- drop: {type: PATH}\n"), "new.yaml")
	if err != nil || c2.Rules.Len() != 2 || c2.ID != 42 || c2.Owner != "oci-hook" {
		t.Fatalf("WithRules: %+v, %v", c2, err)
	}
	if _, err := c.WithRules([]byte("- keep: {nope: 1}\n"), "bad.yaml"); err == nil || !strings.HasPrefix(err.Error(), "bad.yaml:1:") {
		t.Errorf("bad rules: %v", err)
	}
	c3, err := c2.WithBeneath("/var/log/t")
	if err != nil || c3.Deliver.Beneath != "/var/log/t" || c3.Rules.Len() != 2 {
		t.Fatalf("WithBeneath: %+v, %v", c3, err)
	}
}
