package control

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// ScopePolicy is what the host admin allows every scoped socket beyond
// what its own container was given. The zero value allows no remote
// target, no audit container ID, and the default quotas.
type ScopePolicy struct {
	// RemoteAllow lists the destinations a container registered through
	// a scoped socket may deliver to (scoped_remote_allow). Empty: none.
	RemoteAllow []RemoteDest
	// RemoteHostNetNS lets the containers of a scope that has no
	// deliver.netns deliver to remote targets, from the host's network
	// namespace (scoped_remote_host_netns). False: they may not.
	RemoteHostNetNS bool
	// Quota is the quota of a scope whose container file sets none; its
	// zero fields mean DefaultQuota's.
	Quota registry.Quota
	// Chains tells the ancestry of audit container IDs. Nil: no id can be
	// registered through a scoped socket.
	Chains Chains
}

// DefaultQuota is the quota of a scope when neither the daemon's config
// nor the scope's container file sets one.
var DefaultQuota = registry.Quota{Containers: 64, Memory: 256 << 20, Spool: 1 << 30}

// Chains tells the chain of an audit container ID as the kernel reported
// it (op=set records, /proc): the contid itself first, then the contids
// of the containers that enclose it, innermost first. A contid whose
// chain cannot be established is an error, never a guess.
type Chains interface {
	Chain(contid uint64) ([]uint64, error)
}

// prefetched answers one contid's chain from memory: looked up before the
// Backend's lock is taken (a Chains may read /proc), decided under it.
type prefetched struct {
	id    uint64
	chain []uint64
	err   error
	next  Chains
}

func (f prefetched) Chain(id uint64) ([]uint64, error) {
	if id == f.id {
		return f.chain, f.err
	}
	return f.next.Chain(id)
}

// withChainOf returns p with id's chain looked up now.
func (p *ScopePolicy) withChainOf(id uint64) *ScopePolicy {
	if p.Chains == nil || id == record.Unset {
		return p
	}
	q := *p
	ch, err := p.Chains.Chain(id)
	q.Chains = prefetched{id: id, chain: ch, err: err, next: p.Chains}
	return &q
}

// ErrNoChain is matched by the error of a Chains that cannot establish a
// contid's ancestry.
var ErrNoChain = errors.New("the ancestry of this audit container ID cannot be established")

// RemoteDest is one entry of an allow list of remote destinations: an
// address prefix and a port range.
type RemoteDest struct {
	Prefix         netip.Prefix
	PortLo, PortHi uint16
}

// ParseRemoteDest parses "CIDR:PORT" or "CIDR:LOW-HIGH", like
// 127.0.0.0/8:6000, 10.1.0.0/16:60-70 or fd00::/8:60. A bare address is a
// prefix of its full length.
func ParseRemoteDest(s string) (RemoteDest, error) {
	bad := func(why string) (RemoteDest, error) {
		return RemoteDest{}, fmt.Errorf("%q is not CIDR:PORT or CIDR:LOW-HIGH (like 127.0.0.1/32:6000): %s", s, why)
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return bad("no port")
	}
	addr, ports := strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]"), s[i+1:]
	var d RemoteDest
	var err error
	if strings.Contains(addr, "/") {
		d.Prefix, err = netip.ParsePrefix(addr)
	} else {
		var a netip.Addr
		a, err = netip.ParseAddr(addr)
		d.Prefix = netip.PrefixFrom(a, a.BitLen())
	}
	if err != nil {
		return bad(fmt.Sprintf("%q is not an IP address or network", addr))
	}
	d.Prefix = d.Prefix.Masked()
	lo, hi, isRange := strings.Cut(ports, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return bad("the port is not a number from 1 to 65535, or a range LOW-HIGH")
	}
	d.PortLo, d.PortHi = uint16(l), uint16(h)
	return d, nil
}

func (d RemoteDest) String() string {
	if d.PortLo == d.PortHi {
		return fmt.Sprintf("%s:%d", d.Prefix, d.PortLo)
	}
	return fmt.Sprintf("%s:%d-%d", d.Prefix, d.PortLo, d.PortHi)
}

// Allows reports whether ap is inside d.
func (d RemoteDest) Allows(ap netip.AddrPort) bool {
	return d.Prefix.Contains(ap.Addr().Unmap()) && ap.Port() >= d.PortLo && ap.Port() <= d.PortHi
}

// checkRemote says why the scope s may not give its container a remote
// target d, or "".
func (p *ScopePolicy) checkRemote(s *registry.Container, d registry.Target) string {
	if d.Remote == "" {
		return ""
	}
	switch {
	case s.Deliver.Remote == "":
		return fmt.Sprintf("%q delivers to a file: its containers cannot deliver to remote targets", s.Name)
	case s.Deliver.NetNS == "" && !p.RemoteHostNetNS:
		return fmt.Sprintf("%q has no deliver.netns: its containers cannot deliver to remote targets from the host's network namespace (the host admin allows it with scoped_remote_host_netns: yes)", s.Name)
	case d.NetNS != s.Deliver.NetNS:
		return fmt.Sprintf("deliver.netns %q is not the network namespace of %q (%q)", d.NetNS, s.Name, s.Deliver.NetNS)
	}
	ap, err := netip.ParseAddrPort(d.Remote)
	if err != nil {
		host, _, _ := net.SplitHostPort(d.Remote)
		return fmt.Sprintf("deliver.remote %q: a container registered through a scoped socket names its target by IP address, not %q", d.Remote, host)
	}
	for _, a := range p.RemoteAllow {
		if a.Allows(ap) {
			return ""
		}
	}
	return fmt.Sprintf("deliver.remote %s is not in the host's scoped_remote_allow (%s)", d.Remote, p.allowText())
}

func (p *ScopePolicy) allowText() string {
	if len(p.RemoteAllow) == 0 {
		return "empty: no remote target is allowed"
	}
	var out []string
	for _, a := range p.RemoteAllow {
		out = append(out, a.String())
	}
	return strings.Join(out, ", ")
}

// checkID says why the scope s may not register the audit container ID
// id, or "". Only an id whose chain has s's id as an ancestor is allowed.
func (p *ScopePolicy) checkID(s *registry.Container, id uint64) string {
	switch {
	case id == record.Unset:
		return ""
	case !s.HasID():
		return fmt.Sprintf("id %d: %q has no audit container ID, so none can be shown to be inside it: register by cgroup", id, s.Name)
	case id == s.ID:
		return fmt.Sprintf("id %d is the id of %q itself", id, s.Name)
	case p.Chains == nil:
		return fmt.Sprintf("id %d: the daemon has no source of container chains to show it is inside %q (contid %d)", id, s.Name, s.ID)
	}
	chain, err := p.Chains.Chain(id)
	if err != nil {
		return fmt.Sprintf("id %d: cannot establish that it is inside %q (contid %d): %v", id, s.Name, s.ID, err)
	}
	if len(chain) == 0 || chain[0] != id {
		return fmt.Sprintf("id %d: the chain found (%s) is not its own", id, record.AppendChain(nil, chain))
	}
	for _, a := range chain[1:] {
		if a == s.ID {
			return ""
		}
	}
	return fmt.Sprintf("id %d is not inside %q (contid %d): its chain is %s", id, s.Name, s.ID, record.AppendChain(nil, chain))
}

// quotaOf returns the quota of the container a, field by field from its
// own file, then the policy, then DefaultQuota.
func (p *ScopePolicy) quotaOf(a *registry.Container) registry.Quota {
	q := DefaultQuota
	for _, o := range []*registry.Quota{&p.Quota, a.Quota} {
		if o == nil {
			continue
		}
		if o.Containers > 0 {
			q.Containers = o.Containers
		}
		if o.Memory > 0 {
			q.Memory = o.Memory
		}
		if o.Spool > 0 {
			q.Spool = o.Spool
		}
	}
	return q
}

// checkQuotas says which quota registering c in t would exceed, or "".
// Every container enclosing c that is a scope (has a socket) or has a
// quota of its own is checked over its subtree as it would be after the
// change.
func (p *ScopePolicy) checkQuotas(t *registry.Tree, c *registry.Container) string {
	after, err := t.With(c)
	if err != nil {
		return "" // the Backend refuses it as invalid
	}
	for _, a := range after.Ancestors(after.ByName(c.Name)) {
		if a.Socket == "" && a.Quota == nil {
			continue
		}
		q := p.quotaOf(a)
		var n int
		var mem, spool int64
		for _, d := range after.Subtree(a.Name) {
			n, mem, spool = n+1, mem+d.Queue.Memory, spool+d.Queue.Spool
		}
		switch {
		case n > q.Containers:
			return fmt.Sprintf("the quota of %q is exceeded: %d containers inside it, quota.containers is %d", a.Name, n, q.Containers)
		case mem > q.Memory:
			return fmt.Sprintf("the quota of %q is exceeded: queue memory inside it would total %d bytes, quota.memory is %d", a.Name, mem, q.Memory)
		case spool > q.Spool:
			return fmt.Sprintf("the quota of %q is exceeded: spool inside it would total %d bytes, quota.spool is %d", a.Name, spool, q.Spool)
		}
	}
	return ""
}

// FitMemory gives c, registered through the socket of scope, the queue
// memory the scope can hold when c's file names none: the default
// (registry.DefaultMemory), or less when the scope's own queue is smaller
// (a scoped container's may not be larger) or when an enclosing quota has
// less left. So the default follows the quota, and a quota smaller than
// the default still admits containers. A file that names queue.memory is
// left as it is, and checked (CheckScope). t is the tree as it is; the
// check under the registration's lock has the last word.
func (p *ScopePolicy) FitMemory(t *registry.Tree, scope string, c *registry.Container) (*registry.Container, error) {
	s := t.ByName(scope)
	parent := t.ByName(c.Parent)
	if s == nil || parent == nil {
		return c, nil // CheckScope refuses it
	}
	own := min(int64(registry.DefaultMemory), s.Queue.Memory)
	n := own
	for _, a := range append([]*registry.Container{parent}, t.Ancestors(parent)...) {
		if a.Socket == "" && a.Quota == nil {
			continue
		}
		left := p.quotaOf(a).Memory
		for _, d := range t.Subtree(a.Name) {
			if d.Name != c.Name {
				left -= d.Queue.Memory
			}
		}
		n = min(n, left)
	}
	if n < 1 {
		n = own // nothing left: CheckScope says which quota
	}
	if n == c.Queue.Memory {
		return c, nil
	}
	return c.WithMemory(n)
}
