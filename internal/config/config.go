// Package config reads the daemon's configuration, in one of two layouts:
//
//   - auditd's own /etc/audit/auditd.conf, read as it is (auditdconf.go),
//     with the settings auditd does not have (containers, the control
//     socket, the listener, the kernel settings, ...) in a small YAML file
//     beside it, auditd-ns.yaml;
//   - or one YAML file holding every setting, whose keys are auditd.conf's
//     option names plus those added settings.
//
// Parsing is strict: unknown keys, wrong types and bad values are errors
// naming FILE:LINE:COL, and every error in a file is reported, not just the
// first. Parsing touches nothing on the system.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/plugin"
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
	// ExportJetStream, when set, publishes a copy of the host log to NATS
	// JetStream (export_jetstream).
	ExportJetStream *JetStream
	// ConsumeJetStream, when set, makes the source a JetStream durable
	// consumer instead of the kernel (consume_jetstream; local_events must
	// be no).
	ConsumeJetStream *Consume
	// Scoped is what the host admin allows the containers registered
	// through scoped control sockets.
	Scoped Scoped
	// RuleLimits caps the filter rules of the containers registered or
	// pushed through the control API.
	RuleLimits RuleLimits

	// Plugins, as auditd's dispatcher runs them (pkg/plugin).
	PluginDir      string          // plugin_dir: "" runs none (default DefaultPluginDir in auditd.conf, none in YAML)
	QDepth         int             // q_depth: each plugin's queue, in records (default 2000)
	OverflowAction plugin.Overflow // overflow_action (default syslog)
	MaxRestarts    int             // max_restarts (default 10)

	// Side is the auditd-ns.yaml read beside an auditd.conf ("" if none).
	Side string
	// Warnings are what the daemon accepts but says it ignores: auditd.conf
	// options that auditd-ns does not implement, named in one warning.
	Warnings []string
	// pos is where each option was set, for errors found later.
	pos map[string]Pos
}

// Pos is a place in a config file.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.Col == 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Where returns FILE:LINE:COL of the option key, or the
// config file's name if the option was not set in a file.
func (c *Config) Where(key string) string {
	if p, ok := c.pos[key]; ok {
		return p.String()
	}
	return c.File
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

// DefaultPluginDir is auditd's plugin_dir, where an auditd.conf without
// plugin_dir has auditd-ns look for plugins too.
const DefaultPluginDir = "/etc/audit/plugins.d"

// ErrNotFound is matched by the error of Load when the file does not exist.
var ErrNotFound = errors.New("config file not found")

// Load reads and validates the config file at path: an auditd.conf and the
// auditd-ns.yaml beside it, or a YAML config, as IsAuditdConf tells.
func Load(path string) (*Config, error) {
	// O_NONBLOCK: a FIFO in the config's place is refused, not waited on.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if !IsAuditdConf(path, b) {
		return Parse(b, path)
	}
	// The file checked is the file read.
	if err := checkOwner(path, fi); err != nil {
		return nil, err
	}
	side := SidePath(path)
	sb, err := os.ReadFile(side)
	switch {
	case errors.Is(err, os.ErrNotExist):
		side, sb = "", nil
	case err != nil:
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return ParseAuditdConf(b, path, sb, side)
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
		QDepth:            plugin.DefaultQDepth,
		OverflowAction:    plugin.OverflowSyslog,
		MaxRestarts:       plugin.DefaultMaxRestarts,
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
	p := &parser{file: file}
	if !p.yaml(c, src, nil) {
		return nil, p.err()
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	c.warnIgnored(file, p.ignored, "this file")
	c.resolve(filepath.Dir(file))
	return c, c.check(p)
}

// yaml sets c from the YAML src; allow, if not nil, refuses keys (returning
// why) before they are looked up. It returns false if src is not YAML.
func (p *parser) yaml(c *Config, src []byte, allow func(key string) string) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		p.errs = append(p.errs, fileerr.FromYAML(src, p.file, err))
		return false
	}
	if len(doc.Content) == 0 {
		return true
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		p.fail(root, "the config must be a mapping of auditd.conf option names to values")
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			p.fail(k, "%s is given twice", k.Value)
			continue
		}
		seen[k.Value] = true
		if allow != nil {
			if why := allow(k.Value); why != "" {
				p.fail(k, "%s", why)
				continue
			}
		}
		c.setPos(k.Value, Pos{p.file, k.Line, k.Column})
		if k.Value == "listen" {
			c.Listen = p.listen(v)
			continue
		}
		if k.Value == "export_jetstream" {
			c.ExportJetStream = p.exportJetStream(v, os.Hostname)
			continue
		}
		if k.Value == "consume_jetstream" {
			c.ConsumeJetStream = p.consumeJetStream(v)
			continue
		}
		if k.Value == "scoped_remote_allow" {
			c.Scoped.RemoteAllow = p.remoteAllow(v)
			continue
		}
		if unimplemented[k.Value] {
			p.ignored = append(p.ignored, fmt.Sprintf("%s (line %d)", k.Value, k.Line))
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
	return true
}

func (c *Config) setPos(key string, p Pos) {
	if c.pos == nil {
		c.pos = map[string]Pos{}
	}
	c.pos[key] = p
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
	abs(&c.PluginDir)
	c.Listen.resolve(dir)
	c.resolveNATS(dir)
}

// check validates combinations of options.
func (c *Config) check(p *parser) error {
	at := func(key string) Pos {
		if pos, ok := c.pos[key]; ok {
			return pos
		}
		return Pos{c.File, 1, 1}
	}
	if c.NameFormat == "user" && c.Name == "" {
		p.failAt(at("name_format"), "name_format user needs name")
	}
	switch {
	case c.Listen != nil && c.ConsumeJetStream != nil:
		p.failAt(at("consume_jetstream"), "consume_jetstream: and listen: are two sources; give one")
	case c.Listen != nil && c.LocalEvents:
		p.failAt(at("listen"), "listen: needs local_events: no (the daemon reads either the kernel or the listener)")
	case c.ConsumeJetStream != nil && c.LocalEvents:
		p.failAt(at("consume_jetstream"), "consume_jetstream: needs local_events: no (the daemon reads either the kernel or the stream)")
	case c.Listen == nil && c.ConsumeJetStream == nil && !c.LocalEvents:
		p.failAt(at("local_events"), "local_events: no needs a listen: source (or consume_jetstream:)")
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
	// ignored are the unimplemented auditd options set, as "NAME (line N)".
	ignored []string
}

func (p *parser) fail(n *yaml.Node, format string, args ...any) {
	p.errs = append(p.errs, fileerr.At(p.file, n, format, args...))
}

func (p *parser) failAt(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &fileerr.Error{File: pos.File, Line: pos.Line, Col: pos.Col, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) err() error { return errors.Join(p.errs...) }
