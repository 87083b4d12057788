package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README points at nothing outside the repository, and its Layout
// names every package that exists and nothing that does not.
func TestREADMELayout(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, bad := range []string{"../", "the issues", "DESIGN.md"} {
		if strings.Contains(readme, bad) {
			t.Errorf("the README mentions %q: a user's copy has no such thing", bad)
		}
	}
	for _, l := range regexp.MustCompile(`\]\(([^)#]+)`).FindAllStringSubmatch(readme, -1) {
		if _, err := os.Stat(filepath.Join("../..", l[1])); err != nil {
			t.Errorf("the README links %s, which does not exist", l[1])
		}
	}
	i := strings.Index(readme, "## Layout")
	if i < 0 {
		t.Fatal("the README has no Layout section")
	}
	layout := readme[i:]
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:pkg|internal|cmd)/[a-z0-9-]+)/`").FindAllStringSubmatch(layout, -1) {
		listed[m[1]] = true
		if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
			t.Errorf("the README's Layout names %s/, which does not exist", m[1])
		}
	}
	for _, top := range []string{"pkg", "internal", "cmd"} {
		ents, err := os.ReadDir(filepath.Join("../..", top))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.IsDir() && !listed[top+"/"+e.Name()] {
				t.Errorf("the README's Layout does not name %s/%s/: add a line for it", top, e.Name())
			}
		}
	}
}
