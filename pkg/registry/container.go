package registry

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// Target says where a container's copies go. Exactly one of File, Remote
// and JetStream is set; NetNS, with Remote, makes the daemon connect from
// inside that network namespace. Paths are clean and absolute.
type Target struct {
	File string `json:"file,omitempty"`
	// Beneath, with File, is the area the file target is confined to:
	// File lies strictly inside it, and the file, its directory and its
	// rotated copies are reached from a descriptor of Beneath with no
	// symlink followed (package internal/beneath). Beneath itself is
	// opened with no symlink anywhere on its path. "" means the file's
	// own directory is the area (opened once by path, as the host admin
	// wrote it). The daemon sets it for containers registered through a
	// scoped socket; the OCI hook from its admin config.
	Beneath string `json:"beneath,omitempty"`
	// FileOwner, with File, is "UID:GID": the file target (and each file
	// rotation makes) is given to that host uid and gid, so that a
	// container whose root is mapped to them (a user namespace) can read
	// it. The OCI hook sets it from the container's uid and gid maps;
	// scoped sockets cannot. "" leaves the files root's.
	FileOwner string `json:"file_owner,omitempty"`
	Remote    string `json:"remote,omitempty"`
	NetNS     string `json:"netns,omitempty"`
	// JetStream publishes the copies to NATS JetStream (docs/jetstream.md).
	JetStream *JetStreamTarget `json:"jetstream,omitempty"`
}

// JetStreamTarget is deliver.jetstream: where a container's copies are
// published. Only the host admin gives one (a scoped socket refuses it).
type JetStreamTarget struct {
	URL string `json:"url"`
	// Subject is the literal subject; "" means audit.tenant.NAME.HOST, the
	// container's name and the machine's.
	Subject string `json:"subject,omitempty"`
	// Stream, if set, is the stream that must take the copies.
	Stream string `json:"stream,omitempty"`
	// Credentials is a NATS credentials file or a user nkey seed file.
	Credentials string `json:"credentials,omitempty"`
}

// FileOwnerIDs returns the uid and gid of FileOwner, and whether it is set.
func (t Target) FileOwnerIDs() (uid, gid int, ok bool) {
	u, g, found := strings.Cut(t.FileOwner, ":")
	if !found {
		return 0, 0, false
	}
	uu, err1 := strconv.ParseUint(u, 10, 32)
	gg, err2 := strconv.ParseUint(g, 10, 32)
	if err1 != nil || err2 != nil || uu == 1<<32-1 || gg == 1<<32-1 {
		return 0, 0, false
	}
	return int(uu), int(gg), true
}

func (t Target) String() string {
	switch {
	case t.JetStream != nil:
		return "jetstream:" + t.JetStream.URL + "/" + t.JetStream.Subject
	case t.File != "":
		return "file:" + t.File
	case t.NetNS != "":
		return "remote:" + t.Remote + "@" + t.NetNS
	}
	return "remote:" + t.Remote
}

// Default queue limits of a container that names none. DefaultMemory is
// twice the largest burst a healthy file target fell behind by in make
// bench (100 containers, the generator's container taking every record
// of the kernel's full rate: 8.0 MiB; docs/BENCHMARKS.md, "Queue size").
// The ring grows only as a burst needs: an idle container costs the same.
const (
	DefaultMemory = 16 << 20
	DefaultSpool  = 0
)

// Container is one registered container. It is immutable once parsed;
// pushing new rules makes a new Container.
type Container struct {
	Name string
	// ID is the audit container ID, record.Unset for a container known by
	// its cgroup only.
	ID uint64
	// Cgroup is a cgroup directory (stock kernels), "" when ID is set.
	Cgroup  string
	Parent  string
	Deliver Target
	Queue   queue.Limits
	Rules   *rules.Program
	// KernelRules are the container's kernel_rules, loaded with its
	// contid appended (auditrule.AppendContID).
	KernelRules []auditrule.Rule
	// Socket is the path of a scoped control socket for a nested
	// orchestrator, "" for none.
	Socket string
	// Quota bounds what may be registered inside this container through
	// scoped sockets (its own and those of containers inside it); nil
	// means the daemon's defaults (scoped_quota_* in its config).
	Quota *Quota
	// View is how the container's copies show pids and ids: ViewContainer
	// (the default) as its own pid and user namespaces show them, or
	// ViewHost as the host's kernel wrote them.
	View string
	// Owner names the tool that registered the container ("oci-hook"),
	// "" for the host admin. An unregister that names an owner removes
	// only a container with that owner.
	Owner string
	// File and Source are where the container was read from and its text,
	// kept for error messages and persistence.
	File   string
	Source []byte
	// pos remembers where keys were, for whole-set validation errors.
	pos map[string]*yaml.Node
}

// The values of a container's view key.
const (
	ViewContainer = "container"
	ViewHost      = "host"
)

// HostView reports whether the container's copies keep the host's pids
// and ids (view: host).
func (c *Container) HostView() bool { return c.View == ViewHost }

// HasID reports whether the container is known by an audit container ID.
func (c *Container) HasID() bool { return c.ID != record.Unset }

type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	line, col := 1, 1
	if n != nil {
		line, col = n.Line, n.Column
	}
	p.errs = append(p.errs, &fileerr.Error{File: p.file, Line: line, Col: col, Msg: fmt.Sprintf(format, args...)})
}

// Parse parses one container file.
func Parse(src []byte, file string) (*Container, error) {
	p := &parser{file: file}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		p.fail(root, "a container file is a mapping with name, id or cgroup, deliver, queue and rules")
		return nil, errors.Join(p.errs...)
	}
	c := &Container{ID: record.Unset, View: ViewContainer, File: file, Source: bytes.Clone(src), pos: map[string]*yaml.Node{},
		Queue: queue.Limits{Memory: DefaultMemory, Spool: DefaultSpool}}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if _, dup := c.pos[k.Value]; dup {
			p.fail(k, "%s is given twice", k.Value)
			continue
		}
		c.pos[k.Value] = k
		p.field(c, k, v)
	}
	p.check(c, root)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return c, nil
}

func (p *parser) field(c *Container, k, v *yaml.Node) {
	switch k.Value {
	case "name":
		c.Name = p.name(v)
	case "id":
		c.ID = p.contid(v)
	case "cgroup":
		c.Cgroup = p.cgroup(v)
	case "parent":
		c.Parent = p.name(v)
	case "deliver":
		c.Deliver = p.target(v)
	case "queue":
		c.Queue = p.queue(v)
	case "rules":
		prog, err := rules.FromNode(v, p.file)
		if err != nil {
			p.errs = append(p.errs, err)
		}
		c.Rules = prog
	case "kernel_rules":
		c.KernelRules = p.kernelRules(v)
	case "quota":
		c.Quota = p.quota(v)
	case "owner":
		c.Owner = p.name(v)
	case "view":
		c.View = p.view(v)
	case "socket":
		if s := p.scalar(v, "socket"); s == "" || p.clean(v, "socket", s) {
			c.Socket = s
		}
	default:
		p.fail(k, "unknown key %q (known: name, id, cgroup, parent, deliver, queue, rules, kernel_rules, socket, quota, owner, view)", k.Value)
	}
}

func (p *parser) check(c *Container, root *yaml.Node) {
	if c.Name == "" && c.pos["name"] == nil {
		p.fail(root, "name is missing")
	}
	switch {
	case c.pos["id"] == nil && c.pos["cgroup"] == nil:
		p.fail(root, "give id (an audit container ID) or cgroup (a cgroup directory)")
	case c.pos["id"] != nil && c.pos["cgroup"] != nil:
		p.fail(c.pos["cgroup"], "give id or cgroup, not both")
	}
	if c.pos["deliver"] == nil {
		p.fail(root, "deliver is missing (file: PATH, or remote: HOST:PORT)")
	}
	if len(c.KernelRules) > 0 && !c.HasID() {
		p.fail(c.pos["kernel_rules"], "kernel_rules need an id: they are scoped to the container's contid")
	}
	if c.Parent != "" && c.Parent == c.Name {
		p.fail(c.pos["parent"], "a container cannot be its own parent")
	}
}

func (p *parser) scalar(v *yaml.Node, what string) string {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		p.fail(v, "%s takes a single value", what)
		return ""
	}
	return v.Value
}

func (p *parser) name(v *yaml.Node) string {
	s := p.scalar(v, "a name")
	if s == "" {
		return ""
	}
	if err := CheckName(s); err != nil {
		p.fail(v, "%v", err)
		return ""
	}
	return s
}

// MaxName is the longest container name.
const MaxName = 128

// CheckName reports whether s is a valid container name: 1 to MaxName
// letters, digits, '-', '_' and '.', and neither "." nor "..". A name
// becomes a file name (the store, the queue's spool directory), so it must
// never name a directory or its parent.
func CheckName(s string) error {
	switch {
	case s == "":
		return errors.New("name is empty")
	case len(s) > MaxName:
		return fmt.Errorf("name is longer than %d characters", MaxName)
	case s == "." || s == "..":
		return fmt.Errorf("name %q is refused: it names a directory", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r)) {
			return fmt.Errorf("name %q: use letters, digits, '-', '_' and '.'", s)
		}
	}
	return nil
}

func (p *parser) contid(v *yaml.Node) uint64 {
	s := p.scalar(v, "id")
	n, err := strconv.ParseUint(s, 10, 64)
	if s != "" && (err != nil || n == record.Unset) {
		p.fail(v, "id %q is not an audit container ID (a decimal u64 below 18446744073709551615)", s)
		return record.Unset
	}
	return n
}

func (p *parser) view(v *yaml.Node) string {
	s := p.scalar(v, "view")
	switch s {
	case ViewContainer, ViewHost:
		return s
	case "":
		return ViewContainer // the error is given
	}
	p.fail(v, "view %q: give container (pids and ids as the container's namespaces show them) or host (as the host's kernel wrote them)", s)
	return ViewContainer
}

func (p *parser) cgroup(v *yaml.Node) string {
	s := p.scalar(v, "cgroup")
	if s == "" {
		return ""
	}
	if beneath.CheckAbs("cgroup", s) != nil {
		p.fail(v, "cgroup %q must be a clean absolute path to a cgroup directory, like /sys/fs/cgroup/unified/tenants/a", s)
		return ""
	}
	return s
}
