package registry

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// A container file is written here and read by Parse: Spec.Marshal writes
// a new one (ctl register, the OCI hook), and WithRules and WithBeneath
// change one key of a registered container's source, so that what the
// store saves is what Parse reads back after a restart.

// Spec is a container file's keys as text, as ctl register's flags and the
// OCI hook give them. Empty fields are left out.
type Spec struct {
	Name, ID, Cgroup, Parent     string
	File, Beneath, Remote, NetNS string // deliver:
	FileOwner                    string // deliver.file_owner
	Memory, Spool                string // queue:
	Socket, Owner                string
	View                         string // "" leaves the default (container)
	// Rules is the rules: value (see RulesNode); nil for none.
	Rules *yaml.Node
	// Comment, when set, is the file's first line ("# " is added), for
	// an error about the whole file to name.
	Comment string
}

// Marshal returns the container file s describes. Parse validates it.
func (s *Spec) Marshal() ([]byte, error) {
	m := &yaml.Node{Kind: yaml.MappingNode}
	add := func(k string, v *yaml.Node) { m.Content = append(m.Content, scalar(k), v) }
	str := func(k, v string) {
		if v != "" {
			add(k, scalar(v))
		}
	}
	mapping := func(kvs ...[2]string) *yaml.Node {
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range kvs {
			if kv[1] != "" {
				n.Content = append(n.Content, scalar(kv[0]), scalar(kv[1]))
			}
		}
		return n
	}
	str("name", s.Name)
	str("id", s.ID)
	str("cgroup", s.Cgroup)
	str("parent", s.Parent)
	add("deliver", mapping([2]string{"file", s.File}, [2]string{"beneath", s.Beneath}, [2]string{"file_owner", s.FileOwner}, [2]string{"remote", s.Remote}, [2]string{"netns", s.NetNS}))
	if s.Memory != "" || s.Spool != "" {
		add("queue", mapping([2]string{"memory", s.Memory}, [2]string{"spool", s.Spool}))
	}
	str("socket", s.Socket)
	str("owner", s.Owner)
	str("view", s.View)
	if s.Rules != nil {
		add("rules", s.Rules)
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("writing container file %q: %w", s.Name, err)
	}
	if s.Comment != "" {
		b = append([]byte("# "+s.Comment+"\n"), b...)
	}
	return b, nil
}

func scalar(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

// RulesNode checks the rules file src (read from file) and returns it as
// the YAML node of a container file's rules: value.
func RulesNode(src []byte, file string) (*yaml.Node, error) {
	if _, err := rules.Parse(src, file); err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: the rules file is empty", file)
	}
	return doc.Content[0], nil
}

// WithRules returns c with its rules: value replaced by the rules file src
// (read from file), in its source too.
func (c *Container) WithRules(src []byte, file string) (*Container, error) {
	n, err := RulesNode(src, file)
	if err != nil {
		return nil, err
	}
	return c.edit("setting rules", func(m *yaml.Node) error {
		setKey(m, "rules", n)
		return nil
	})
}

// WithBeneath returns c with deliver.beneath set to dir (replacing any
// given), in its source too, so that the confinement is kept when the
// registration is stored and read back. c must have a file target inside
// dir.
func (c *Container) WithBeneath(dir string) (*Container, error) {
	return c.edit("setting deliver.beneath", func(m *yaml.Node) error {
		deliver := value(m, "deliver")
		if deliver == nil || deliver.Kind != yaml.MappingNode {
			return fmt.Errorf("deliver is not a mapping")
		}
		setKey(deliver, "beneath", scalar(dir))
		return nil
	})
}

// edit parses c's source, lets change edit its top-level mapping, and
// parses the result as c's file.
func (c *Container) edit(what string, change func(m *yaml.Node) error) (*Container, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(c.Source, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s: %s: the container's source is not a mapping", c.File, what)
	}
	if err := change(doc.Content[0]); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.File, what, err)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.File, what, err)
	}
	return Parse(out, c.File)
}

// value returns the value of key in mapping m, nil when absent.
func value(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// setKey sets key in mapping m to v, replacing every value it had.
func setKey(m *yaml.Node, key string, v *yaml.Node) {
	set := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content[i+1], set = v, true
		}
	}
	if !set {
		m.Content = append(m.Content, scalar(key), v)
	}
}

// WithMemory returns c with a queue memory limit of n bytes when its file
// names none (it has the default), and c itself when it names one: a
// scoped registration that leaves the size to the daemon gets what its
// scope can hold (control.FitMemory).
func (c *Container) WithMemory(n int64) (*Container, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(c.Source, &doc); err == nil && len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
		if q := value(doc.Content[0], "queue"); q != nil && q.Kind == yaml.MappingNode && value(q, "memory") != nil {
			return c, nil
		}
	}
	return c.edit("setting queue.memory", func(m *yaml.Node) error {
		q := value(m, "queue")
		if q == nil {
			q = &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
			setKey(m, "queue", q)
		}
		if q.Kind != yaml.MappingNode {
			return fmt.Errorf("queue is not a mapping")
		}
		setKey(q, "memory", scalar(strconv.FormatInt(n, 10)))
		return nil
	})
}
