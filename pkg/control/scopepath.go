package control

import (
	"path/filepath"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// Confine returns c, to be registered through the socket scoped to scope,
// with its file target confined to the directory of the scope's own file
// target: deliver.beneath is set to that directory, whatever the caller
// gave, so that the daemon resolves the file beneath a descriptor of it
// and never follows a symlink there. A container with a remote target, or
// a scope that is not registered or has no file target, is returned as it
// is: CheckScope refuses what must be refused.
func Confine(t *registry.Tree, scope string, c *registry.Container) (*registry.Container, error) {
	s := t.ByName(scope)
	if c.Deliver.File == "" || s == nil || s.Deliver.File == "" {
		return c, nil
	}
	area := filepath.Dir(s.Deliver.File)
	if c.Deliver.Beneath == area || !beneath.Inside(c.Deliver.File, area) {
		return c, nil
	}
	return c.WithBeneath(area)
}

// inside reports whether path lies strictly inside dir. Both must be
// clean and absolute (beneath.CheckAbs); an unclean path is inside
// nothing.
func inside(path, dir string) bool { return beneath.Inside(path, dir) }
