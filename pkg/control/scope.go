package control

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// CheckScope reports whether a caller of the socket scoped to the
// container called scope may register c (replacing a container of the
// same name if there is one), under the host admin's policy p (nil: the
// zero policy). t is the tree before the change. The rules, each refused
// with ErrForbidden:
//
//   - the scope is registered, and c is not the scope itself;
//   - c has a parent, and its parent is the scope or a container inside
//     it; a container of c's name, if any, is strictly inside the scope;
//   - a file target lies inside the directory of the scope's own file
//     target, and is confined to it (deliver.beneath is that directory,
//     as Confine sets it); a scope delivering to a remote target allows
//     none;
//   - a remote target is allowed when the scope delivers to a remote
//     target too, from the scope's network namespace (deliver.netns
//     equal to the scope's; a scope without one has none unless
//     p.RemoteHostNetNS), to an IP address and port in p.RemoteAllow;
//   - an id has the scope's id as an ancestor in its chain (p.Chains);
//   - no enclosing scope's quota is exceeded (see ScopePolicy);
//   - a cgroup lies strictly inside the scope's cgroup directory;
//   - a socket lies in the directory of the scope's own socket;
//   - no kernel_rules: kernel rules are the host admin's;
//   - queue limits are no larger than the scope's own.
func CheckScope(t *registry.Tree, scope string, c *registry.Container, p *ScopePolicy) error {
	if p == nil {
		p = &ScopePolicy{}
	}
	s, err := scopeOf(t, scope)
	if err != nil {
		return err
	}
	deny := func(format string, args ...any) error {
		return fmt.Errorf("%w: container %q: %s", ErrForbidden, c.Name, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Name == scope:
		return deny("a scoped socket cannot register its own container")
	case c.Parent == "":
		return deny("a container registered through the socket of %q needs a parent: %q or a container inside it", scope, scope)
	case t.ByName(c.Parent) == nil || !t.Within(c.Parent, scope):
		return deny("parent %q is not a registered container inside %q", c.Parent, scope)
	case t.ByName(c.Name) != nil && !t.Within(c.Name, scope):
		return deny("the name is registered outside %q", scope)
	case len(c.KernelRules) > 0:
		return deny("kernel_rules can be given only through the host's socket")
	case c.Queue.Memory > s.Queue.Memory || c.Queue.Spool > s.Queue.Spool:
		return deny("queue limits (memory %d, spool %d) exceed those of %q (memory %d, spool %d)",
			c.Queue.Memory, c.Queue.Spool, scope, s.Queue.Memory, s.Queue.Spool)
	}
	if c.Deliver.FileOwner != "" {
		return deny("deliver.file_owner can be given only through the host's socket")
	}
	if msg := scopeTarget(s, c.Deliver); msg != "" {
		return deny("%s", msg)
	}
	if msg := p.checkRemote(s, c.Deliver); msg != "" {
		return deny("%s", msg)
	}
	if msg := p.checkID(s, c.ID); msg != "" {
		return deny("%s", msg)
	}
	if c.Cgroup != "" && (s.Cgroup == "" || !inside(c.Cgroup, s.Cgroup)) {
		return deny("cgroup %q is not inside the cgroup of %q (%q)", c.Cgroup, scope, s.Cgroup)
	}
	if c.Socket != "" && (s.Socket == "" || !inside(c.Socket, filepath.Dir(s.Socket))) {
		return deny("socket %q is not in the directory of the socket of %q", c.Socket, scope)
	}
	if msg := p.checkQuotas(t, c); msg != "" {
		return deny("%s", msg)
	}
	return nil
}

func scopeTarget(s *registry.Container, d registry.Target) string {
	switch {
	case d.JetStream != nil:
		// A server, credentials file and subject of the scope's choosing
		// would let it publish as the host, or make the daemon read any
		// file: only the host admin gives a jetstream target.
		return "deliver.jetstream can be given only through the host's socket"
	case d.File != "" && s.Deliver.File == "":
		return fmt.Sprintf("%q delivers to a remote target: its containers cannot deliver to files", s.Name)
	case d.File != "" && !inside(d.File, filepath.Dir(s.Deliver.File)):
		return fmt.Sprintf("deliver.file %q is not inside %q, the directory of the file target of %q", d.File, filepath.Dir(s.Deliver.File), s.Name)
	case d.File != "" && d.Beneath != filepath.Dir(s.Deliver.File):
		return fmt.Sprintf("deliver.beneath %q is not %q, the directory of the file target of %q (see Confine)", d.Beneath, filepath.Dir(s.Deliver.File), s.Name)
	}
	return ""
}

// CheckScopeName reports whether a caller of the socket scoped to scope
// may unregister, or push rules for, the container called name: it must
// be registered and strictly inside the scope.
func CheckScopeName(t *registry.Tree, scope, name string) error {
	if _, err := scopeOf(t, scope); err != nil {
		return err
	}
	switch {
	case name == scope:
		return fmt.Errorf("%w: container %q is this socket's own: only the host's socket can change it", ErrForbidden, name)
	case t.ByName(name) == nil:
		return fmt.Errorf("%w: no container %q inside %q", ErrNotFound, name, scope)
	case !t.Within(name, scope):
		return fmt.Errorf("%w: container %q is not inside %q", ErrForbidden, name, scope)
	}
	return nil
}

func scopeOf(t *registry.Tree, scope string) (*registry.Container, error) {
	s := t.ByName(scope)
	if s == nil {
		return nil, fmt.Errorf("%w: this socket's container %q is no longer registered", ErrForbidden, scope)
	}
	return s, nil
}

// CheckPeer reports whether the process pid, the peer of a socket scoped
// to scope, may use it. On a kernel with the container-ID patches
// (PROC/PID/audit_containerid exists) its audit container ID must be the
// scope's own or that of a registered container inside the scope;
// otherwise, and also when the scope has no ID, it is refused with
// ErrForbidden. On a stock kernel (the file does not exist) there is
// nothing to check and CheckPeer returns nil. proc is the procfs mount,
// normally "/proc". Needs to be able to read the file: root.
func CheckPeer(proc string, pid int, t *registry.Tree, scope string) error {
	s, err := scopeOf(t, scope)
	if err != nil {
		return err
	}
	pdir := filepath.Join(proc, strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(pdir, "audit_containerid"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(pdir); serr != nil {
			return fmt.Errorf("%w: the caller's process %d is gone", ErrForbidden, pid)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: reading the caller's audit container ID: %v", ErrForbidden, err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: the caller's audit container ID %q: %v", ErrForbidden, strings.TrimSpace(string(b)), err)
	}
	switch {
	case !s.HasID():
		return fmt.Errorf("%w: %q has no audit container ID to check the caller's (%d) against", ErrForbidden, scope, id)
	case id == record.Unset:
		return fmt.Errorf("%w: the caller (pid %d) is in no container; this socket serves %q (contid %d)", ErrForbidden, pid, scope, s.ID)
	case id == s.ID:
		return nil
	}
	if c := t.ByID(id); c != nil && t.Within(c.Name, scope) {
		return nil
	}
	return fmt.Errorf("%w: the caller (pid %d, contid %d) is not in %q (contid %d) or a container inside it", ErrForbidden, pid, id, scope, s.ID)
}
