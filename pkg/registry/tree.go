package registry

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// Tree is a validated set of containers. It is immutable: a change builds a
// new Tree.
type Tree struct {
	byName   map[string]*Container
	byID     map[uint64]*Container
	children map[string][]string
	ordered  []*Container // parents before children, then by name
}

// Build validates containers as a whole and indexes them: names, ids and
// cgroups are unique, every parent is registered, and there is no cycle.
func Build(cs []*Container) (*Tree, error) {
	t := &Tree{byName: map[string]*Container{}, byID: map[uint64]*Container{}, children: map[string][]string{}}
	var errs []error
	fail := func(c *Container, key, format string, args ...any) {
		n := c.pos[key]
		line, col := 1, 1
		if n != nil {
			line, col = n.Line, n.Column
		}
		errs = append(errs, &fileerr.Error{File: c.File, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
	}
	byCgroup := map[string]*Container{}
	for _, c := range cs {
		if o, dup := t.byName[c.Name]; dup {
			fail(c, "name", "container name %q is already used by %s", c.Name, o.File)
			continue
		}
		if c.HasID() {
			if o, dup := t.byID[c.ID]; dup {
				fail(c, "id", "container id %d is already used by %q (%s)", c.ID, o.Name, o.File)
				continue
			}
			t.byID[c.ID] = c
		}
		if c.Cgroup != "" {
			// Two containers claiming one cgroup would each get (or
			// take) the other's records.
			if o, dup := byCgroup[c.Cgroup]; dup {
				fail(c, "cgroup", "cgroup %s is already claimed by container %q (%s)", c.Cgroup, o.Name, o.File)
				continue
			}
			byCgroup[c.Cgroup] = c
		}
		t.byName[c.Name] = c
	}
	for _, c := range t.byName {
		if c.Parent == "" {
			continue
		}
		if _, ok := t.byName[c.Parent]; !ok {
			fail(c, "parent", "parent %q is not a registered container", c.Parent)
			continue
		}
		t.children[c.Parent] = append(t.children[c.Parent], c.Name)
	}
	for _, c := range cs {
		if cyc := t.cycle(c); cyc != nil {
			fail(c, "parent", "parent chain makes a cycle: %v", cyc)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t.order()
	return t, nil
}

func (t *Tree) cycle(c *Container) []string {
	seen := map[string]bool{}
	var path []string
	for cur := c; cur != nil && cur.Parent != ""; cur = t.byName[cur.Parent] {
		if seen[cur.Name] {
			return append(path, cur.Name)
		}
		seen[cur.Name] = true
		path = append(path, cur.Name)
	}
	return nil
}

func (t *Tree) order() {
	var roots []string
	for name, c := range t.byName {
		if c.Parent == "" {
			roots = append(roots, name)
		}
	}
	sort.Strings(roots)
	var walk func(string)
	walk = func(name string) {
		t.ordered = append(t.ordered, t.byName[name])
		kids := t.children[name]
		sort.Strings(kids)
		for _, k := range kids {
			walk(k)
		}
	}
	for _, r := range roots {
		walk(r)
	}
}

// Containers returns every container, parents before their children.
func (t *Tree) Containers() []*Container { return t.ordered }

// ByName returns the container called name, or nil.
func (t *Tree) ByName(name string) *Container { return t.byName[name] }

// ByID returns the container with audit container ID id, or nil.
func (t *Tree) ByID(id uint64) *Container { return t.byID[id] }

// Ancestors returns the containers enclosing c, innermost first.
func (t *Tree) Ancestors(c *Container) []*Container {
	var out []*Container
	for p := t.byName[c.Parent]; p != nil; p = t.byName[p.Parent] {
		out = append(out, p)
	}
	return out
}

// Within reports whether the container called name is ancestor or equal to
// the one called inner.
func (t *Tree) Within(inner, name string) bool {
	for c := t.byName[inner]; c != nil; c = t.byName[c.Parent] {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Subtree returns the containers strictly inside the one called name,
// parents before children.
func (t *Tree) Subtree(name string) []*Container {
	var out []*Container
	for _, c := range t.ordered {
		if c.Name != name && t.Within(c.Name, name) {
			out = append(out, c)
		}
	}
	return out
}

// With returns a new tree with c added (or replacing the container of the
// same name), validated as a whole.
func (t *Tree) With(c *Container) (*Tree, error) {
	cs := []*Container{}
	for _, o := range t.ordered {
		if o.Name != c.Name {
			cs = append(cs, o)
		}
	}
	return Build(append(cs, c))
}

// Without returns a new tree without the container called name. It refuses
// to remove a container that still has children.
func (t *Tree) Without(name string) (*Tree, error) {
	if t.byName[name] == nil {
		return nil, fmt.Errorf("no container %q", name)
	}
	if kids := t.children[name]; len(kids) > 0 {
		return nil, fmt.Errorf("container %q still has nested containers %v: unregister them first", name, kids)
	}
	var cs []*Container
	for _, o := range t.ordered {
		if o.Name != name {
			cs = append(cs, o)
		}
	}
	return Build(cs)
}

// LoadDir parses every *.yaml file in dir (not recursively) and validates
// them as a whole. A missing dir is an empty registry.
func LoadDir(dir string) ([]*Container, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	more, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
	files = append(files, more...)
	sort.Strings(files)
	var cs []*Container
	var errs []error
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading container file: %w", err))
			continue
		}
		c, err := Parse(src, f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cs = append(cs, c)
	}
	return cs, errors.Join(errs...)
}
