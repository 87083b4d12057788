package registry

// This file holds what the keys of a container file other than its name
// and ids parse into: deliver (Target), queue (queue.Limits), kernel_rules
// (auditrule.Rule), quota (Quota), and sizes like 4MiB (ParseSize).

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

func (p *parser) target(v *yaml.Node) Target {
	var t Target
	if v.Kind != yaml.MappingNode {
		p.fail(v, "deliver is a mapping: {file: PATH, beneath: DIR}, {remote: HOST:PORT, netns: PATH} or {jetstream: {url, subject, stream, credentials}}")
		return t
	}
	p.eachKey(v, "deliver", func(k, val *yaml.Node) {
		if k.Value == "jetstream" {
			t.JetStream = p.jetstream(val)
			return
		}
		s := p.scalar(val, "deliver."+k.Value)
		switch k.Value {
		case "file":
			if s != "" {
				p.clean(val, "deliver.file", s)
			}
			t.File = s
		case "beneath":
			if s != "" {
				p.clean(val, "deliver.beneath", s)
			}
			t.Beneath = s
		case "remote":
			if _, port, err := net.SplitHostPort(s); s != "" && (err != nil || port == "") {
				p.fail(val, "deliver.remote %q is not HOST:PORT", s)
			}
			t.Remote = s
		case "file_owner":
			t.FileOwner = s
			if _, _, ok := t.FileOwnerIDs(); !ok {
				p.fail(val, "deliver.file_owner %q is not UID:GID (host ids, decimal)", s)
			}
		case "netns":
			if s != "" && beneath.CheckAbs("deliver.netns", s) != nil {
				p.fail(val, "deliver.netns %q must be a clean absolute path like /run/netns/NAME or /proc/PID/ns/net", s)
			}
			t.NetNS = s
		default:
			p.fail(k, "unknown deliver key %q (known: file, beneath, file_owner, remote, netns, jetstream)", k.Value)
		}
	})
	n := 0
	for _, set := range []bool{t.File != "", t.Remote != "", t.JetStream != nil} {
		if set {
			n++
		}
	}
	switch {
	case t.File != "" && t.Remote != "":
		p.fail(v, "deliver has both file and remote; give one")
	case n > 1:
		p.fail(v, "deliver has jetstream and file or remote; give one")
	case n == 0:
		p.fail(v, "deliver needs file: PATH, remote: HOST:PORT or jetstream: {url: ...}")
	case t.NetNS != "" && t.Remote == "":
		p.fail(v, "deliver.netns needs remote: 127.0.0.1:PORT")
	case t.Beneath != "" && t.File == "":
		p.fail(v, "deliver.beneath needs file: PATH inside it")
	case t.FileOwner != "" && t.File == "":
		p.fail(v, "deliver.file_owner needs file: PATH")
	case t.Beneath != "" && beneath.CheckAbs("", t.File) == nil && beneath.CheckAbs("", t.Beneath) == nil && !beneath.Inside(t.File, t.Beneath):
		p.fail(v, "deliver.file %q is not inside deliver.beneath %q", t.File, t.Beneath)
	}
	return t
}

// clean reports whether s, the value of field, is a clean absolute path,
// and fails v if not.
func (p *parser) clean(v *yaml.Node, field, s string) bool {
	if err := beneath.CheckAbs(field, s); err != nil {
		p.fail(v, "%v", err)
		return false
	}
	return true
}

func (p *parser) queue(v *yaml.Node) queue.Limits {
	lim := queue.Limits{Memory: DefaultMemory, Spool: DefaultSpool}
	if v.Kind != yaml.MappingNode {
		p.fail(v, "queue is a mapping: {memory: 4MiB, spool: 64MiB}")
		return lim
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		s := p.scalar(val, "queue."+k.Value)
		n, err := ParseSize(s)
		if s != "" && err != nil {
			p.fail(val, "queue.%s: %v", k.Value, err)
			continue
		}
		switch k.Value {
		case "memory":
			if n < 1 || n > 2<<30 {
				p.fail(val, "queue.memory must be from 1B to 2GiB")
			}
			lim.Memory = n
		case "spool":
			if n != 0 && n < queue.MinSpool {
				p.fail(val, "queue.spool must be 0 (no spool) or at least %d bytes (128KiB)", queue.MinSpool)
			}
			lim.Spool = n
		default:
			p.fail(k, "unknown queue key %q (known: memory, spool)", k.Value)
		}
	}
	return lim
}

// ParseSize parses a byte size: a plain number, or one with a suffix KiB,
// MiB, GiB (powers of 1024) or KB, MB, GB (powers of 1000).
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size like 4MiB, 512KiB or 1048576", s)
	}
	return n * mult, nil
}

func (p *parser) kernelRules(v *yaml.Node) []auditrule.Rule {
	if v.Kind != yaml.SequenceNode {
		p.fail(v, "kernel_rules is a list of rules in auditctl syntax")
		return nil
	}
	var out []auditrule.Rule
	for _, n := range v.Content {
		s := p.scalar(n, "a kernel rule")
		if s == "" {
			continue
		}
		f := strings.Fields(s)
		if len(f) == 0 || (f[0] != "-a" && f[0] != "-A" && f[0] != "-w") {
			p.fail(n, "a container's kernel rule must be -a, -A or -w (got %q)", s)
			continue
		}
		if strings.Contains(s, "contid") {
			p.fail(n, "a container's kernel rule may not name contid: the daemon adds the container's own")
			continue
		}
		wire, err := auditrule.Build(s)
		if err != nil {
			p.fail(n, "kernel rule %q: %v", s, err)
			continue
		}
		out = append(out, auditrule.Rule{Text: s, Wire: wire, Line: n.Line})
	}
	return out
}

// Quota bounds the containers registered inside a container through
// scoped sockets, summed over its whole subtree (the container itself not
// counted). A zero field means the daemon's default for it.
type Quota struct {
	// Containers is the most containers inside it.
	Containers int
	// Memory and Spool are the most bytes of queue memory and of disk
	// spool (queue.memory, queue.spool) of those containers together.
	Memory, Spool int64
}

func (p *parser) quota(v *yaml.Node) *Quota {
	q := &Quota{}
	if v.Kind != yaml.MappingNode {
		p.fail(v, "quota is a mapping: {containers: 64, memory: 256MiB, spool: 1GiB}")
		return q
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		s := p.scalar(val, "quota."+k.Value)
		switch k.Value {
		case "containers":
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1<<20 {
				p.fail(val, "quota.containers %q is not a number from 1 to 1048576", s)
				continue
			}
			q.Containers = n
		case "memory", "spool":
			n, err := ParseSize(s)
			if err != nil || n < 1 {
				p.fail(val, "quota.%s: %q is not a size like 256MiB", k.Value, s)
				continue
			}
			if k.Value == "memory" {
				q.Memory = n
			} else {
				q.Spool = n
			}
		default:
			p.fail(k, "unknown quota key %q (known: containers, memory, spool)", k.Value)
		}
	}
	return q
}

// eachKey calls f with each key of the mapping v and its value, in order,
// and fails on a key given twice; what names the mapping in that error.
func (p *parser) eachKey(v *yaml.Node, what string, f func(k, val *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k := v.Content[i]
		if seen[k.Value] {
			p.fail(k, "%s.%s is given twice", what, k.Value)
		}
		seen[k.Value] = true
		f(k, v.Content[i+1])
	}
}

// jetstream parses deliver.jetstream.
func (p *parser) jetstream(v *yaml.Node) *JetStreamTarget {
	j := &JetStreamTarget{}
	if v.Kind != yaml.MappingNode {
		p.fail(v, "deliver.jetstream is a mapping: {url: nats://HOST:PORT, subject: SUBJECT, stream: NAME, credentials: FILE}")
		return j
	}
	p.eachKey(v, "deliver.jetstream", func(k, val *yaml.Node) {
		s := p.scalar(val, "deliver.jetstream."+k.Value)
		switch k.Value {
		case "url":
			j.URL = s
		case "subject":
			if err := jetstream.CheckSubject(s); err != nil {
				p.fail(val, "deliver.jetstream.subject: %v", err)
			}
			j.Subject = s
		case "stream":
			if t, err := jetstream.Token("stream", s); err != nil || t != s {
				p.fail(val, "deliver.jetstream.stream %q: use letters, digits, '-' and '_'", s)
			}
			j.Stream = s
		case "credentials":
			if s != "" {
				p.clean(val, "deliver.jetstream.credentials", s)
			}
			j.Credentials = s
		default:
			p.fail(k, "unknown deliver.jetstream key %q (known: url, subject, stream, credentials)", k.Value)
		}
	})
	if j.URL == "" {
		p.fail(v, "deliver.jetstream.url is missing (nats://HOST:PORT, several comma-separated)")
	}
	return j
}
