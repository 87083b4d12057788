// Package config reads the daemon's YAML configuration. Its keys are
// auditd.conf's option names, so an admin who knows auditd.conf recognises
// every one; a few keys are added for what auditd keeps elsewhere (the
// audit.rules path, the kernel settings) and for containers.
//
// Parsing is strict: unknown keys, wrong types and bad values are errors
// naming FILE:LINE:COL, and every error in a file is reported, not just the
// first. Parsing touches nothing on the system.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// Config is the daemon's configuration.
type Config struct {
	// File is the path the config was read from.
	File string

	LocalEvents   bool   // local_events: receive from the kernel (default yes)
	WriteLogs     bool   // write_logs (default yes)
	LogGroup      string // log_group (default root)
	NameFormat    string // name_format: none, hostname, fqd, numeric, user
	Name          string // name, for name_format user
	PriorityBoost int    // priority_boost (default 4)

	Log hostlog.Options // log_file, log_format, flush, freq, rotation, space

	// Kernel settings; nil means leave the kernel's value alone.
	BacklogLimit, RateLimit, BacklogWaitTime, Failure *uint32
	AuditRules                                        string // audit_rules: path of an audit.rules file
	RulesOnExit                                       string // rules_on_exit: keep (default) or delete
	// LostCheckInterval is how often the kernel's lost and backlog counters
	// are read (lost_check_interval, default 5s).
	LostCheckInterval time.Duration
	ContainersDir     string // containers_dir
	StateDir          string // state_dir: registry and spools (default /var/lib/auditd-ns)
	ControlSocket     string // control_socket (default /run/auditd-ns/control.sock)
	LogLevel          string // log_level for the daemon's own messages (default info)
	MetricsAddress    string // metrics_address: HOST:PORT of the Prometheus endpoint ("" = off)
	// Listen, when set, makes the source the remote-logging listener
	// instead of the kernel (listener mode; local_events must be no).
	Listen *Listen
	// Scoped is what the host admin allows the containers registered
	// through scoped control sockets.
	Scoped Scoped
	// RuleLimits caps the filter rules of the containers registered or
	// pushed through the control API.
	RuleLimits RuleLimits
}

// RuleLimits caps the containers' filter rules, which the router tries for
// every event on the one goroutine that serves every tenant. Sizes are
// counted as rules.Size counts them; a zero field caps nothing.
type RuleLimits struct {
	// Container caps one container's rules (max_rules, max_rule_patterns;
	// default rules.DefaultContainer).
	Container rules.Limits
	// Chain caps the rules on one chain, the container, those enclosing it
	// and those nested in it, all tried for one event (max_chain_rules,
	// max_chain_patterns; default rules.DefaultChain).
	Chain rules.Limits
}

// Scoped is the host admin's policy for scoped control sockets.
type Scoped struct {
	// RemoteAllow (scoped_remote_allow) lists the destinations, CIDR:PORT
	// or CIDR:LOW-HIGH, their remote targets may name. Default: none.
	RemoteAllow []control.RemoteDest
	// RemoteHostNetNS (scoped_remote_host_netns) lets the containers of a
	// scope without deliver.netns connect from the host's network
	// namespace. Default no.
	RemoteHostNetNS bool
	// Quota is every scope's default quota (scoped_quota_containers,
	// scoped_quota_memory, scoped_quota_spool); a scope's container file
	// may set its own. Defaults: control.DefaultQuota.
	Quota registry.Quota
}

// Error is one bad entry, with its place in the file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg) }

// ErrNotFound is matched by the error of Load when the file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load reads and validates the config file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(b, path)
}

// Default returns the configuration an empty file gives.
func Default() *Config {
	return &Config{
		LocalEvents:       true,
		WriteLogs:         true,
		LogGroup:          "root",
		NameFormat:        "none",
		PriorityBoost:     4,
		RulesOnExit:       "keep",
		LostCheckInterval: 5 * time.Second,
		StateDir:          "/var/lib/auditd-ns",
		ControlSocket:     "/run/auditd-ns/control.sock",
		LogLevel:          "info",
		Scoped:            Scoped{Quota: control.DefaultQuota},
		RuleLimits:        RuleLimits{Container: rules.DefaultContainer, Chain: rules.DefaultChain},
		Log: hostlog.Options{
			Path:                 "/var/log/audit/audit.log",
			Format:               hostlog.Raw,
			Flush:                hostlog.FlushIncrementalAsync,
			Freq:                 50,
			MaxLogFile:           8 << 20,
			MaxLogFileAction:     hostlog.Action{Kind: hostlog.ActionRotate},
			NumLogs:              5,
			SpaceLeft:            hostlog.Space{Bytes: 75 << 20},
			SpaceLeftAction:      hostlog.Action{Kind: hostlog.ActionSyslog},
			AdminSpaceLeft:       hostlog.Space{Bytes: 50 << 20},
			AdminSpaceLeftAction: hostlog.Action{Kind: hostlog.ActionSuspend},
			DiskFullAction:       hostlog.Action{Kind: hostlog.ActionSuspend},
			DiskErrorAction:      hostlog.Action{Kind: hostlog.ActionSuspend},
		},
	}
}

// Parse parses config YAML. Relative paths in it are taken relative to the
// file's directory.
func Parse(src []byte, file string) (*Config, error) {
	c := Default()
	c.File = file
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(doc.Content) == 0 {
		return c, nil
	}
	p := &parser{file: file}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.fail(root, "the config must be a mapping of auditd.conf option names to values")
		return nil, p.err()
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			p.fail(k, "%s is given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		if k.Value == "listen" {
			c.Listen = p.listen(v)
			continue
		}
		if k.Value == "scoped_remote_allow" {
			c.Scoped.RemoteAllow = p.remoteAllow(v)
			continue
		}
		set, ok := fields[k.Value]
		if !ok {
			p.fail(k, "unknown option %q%s", k.Value, suggest(k.Value))
			continue
		}
		if v.Kind != yaml.ScalarNode {
			p.fail(v, "%s takes a single value", k.Value)
			continue
		}
		if err := set(c, v.Value); err != nil {
			p.fail(v, "%s: %v", k.Value, err)
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	c.resolve(filepath.Dir(file))
	return c, c.check(root, p)
}

func (c *Config) resolve(dir string) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	abs := func(s *string) {
		if *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(dir, *s)
		}
	}
	abs(&c.Log.Path)
	abs(&c.AuditRules)
	abs(&c.ContainersDir)
	abs(&c.StateDir)
	abs(&c.ControlSocket)
	c.Listen.resolve(dir)
}

// check validates combinations of options.
func (c *Config) check(root *yaml.Node, p *parser) error {
	if c.NameFormat == "user" && c.Name == "" {
		p.fail(root, "name_format user needs name")
	}
	switch {
	case c.Listen != nil && c.LocalEvents:
		p.fail(root, "listen: needs local_events: no (the daemon reads either the kernel or the listener)")
	case c.Listen == nil && !c.LocalEvents:
		p.fail(root, "local_events: no needs a listen: source")
	}
	return p.err()
}

func (p *parser) remoteAllow(v *yaml.Node) []control.RemoteDest {
	if v.Kind != yaml.SequenceNode {
		p.fail(v, "scoped_remote_allow is a list of destinations like [127.0.0.1/32:6000, 10.0.0.0/8:60-70]")
		return nil
	}
	out := []control.RemoteDest{}
	for _, n := range v.Content {
		d, err := control.ParseRemoteDest(n.Value)
		if err != nil || n.Kind != yaml.ScalarNode {
			p.fail(n, "scoped_remote_allow: %v", err)
			continue
		}
		out = append(out, d)
	}
	return out
}

type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, &Error{p.file, n.Line, n.Column, fmt.Sprintf(format, args...)})
}

func (p *parser) err() error { return errors.Join(p.errs...) }
