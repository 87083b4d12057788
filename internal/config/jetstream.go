package config

import (
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// JetStream is a host-log export to NATS JetStream (export_jetstream): a
// copy of every record of the host log is published to Subject, through a
// bounded queue of its own, at least once (docs/jetstream.md).
type JetStream struct {
	URL         string // url: nats://HOST:PORT, or several, comma-separated
	Subject     string // subject: default audit.host.HOST (HOST from the machine's name)
	Stream      string // stream: the stream that must take the messages ("" = any)
	Credentials string // credentials: a NATS credentials file or a user nkey seed file
	// InboxPrefix is inbox_prefix: where acks come back; default
	// _INBOX_HOST, as the permissions of docs/jetstream.md expect.
	InboxPrefix string
	Memory      int64 // memory: the queue's memory limit (default 64MiB)
	Spool       int64 // spool: the queue's spool limit (default 0, none)
}

// Consume makes the daemon's source a JetStream durable consumer instead
// of the kernel (consume_jetstream; local_events must be no): it writes a
// tenant's records from every host to the log.
type Consume struct {
	URL         string // url
	Stream      string // stream: the stream read
	Durable     string // durable: the durable consumer's name
	Subject     string // subject: the filter, like audit.tenant.TENANT.>
	Credentials string // credentials
	InboxPrefix string // inbox_prefix: default _INBOX_DURABLE
}

const (
	exportKeys  = "url, subject, stream, credentials, inbox_prefix, memory, spool"
	consumeKeys = "url, stream, durable, subject, credentials, inbox_prefix"
)

// mappings are the settings whose value is a mapping, not one value.
var mappings = map[string]bool{"listen": true, "scoped_remote_allow": true, "export_jetstream": true, "consume_jetstream": true}

// settings fills the string settings of mapping v, named name, into to;
// sizes, when not nil, takes the size settings.
func (p *parser) settings(name string, v *yaml.Node, known string, to map[string]*string, sizes map[string]*int64) bool {
	if v.Kind != yaml.MappingNode {
		p.fail(v, "%s is a mapping: {%s}", name, known)
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if seen[k.Value] {
			p.fail(k, "%s.%s is given twice", name, k.Value)
			continue
		}
		seen[k.Value] = true
		if val.Kind != yaml.ScalarNode {
			p.fail(val, "%s.%s takes a single value", name, k.Value)
			continue
		}
		if s, ok := to[k.Value]; ok {
			*s = val.Value
			continue
		}
		if n, ok := sizes[k.Value]; ok {
			sz, err := registry.ParseSize(val.Value)
			if err != nil || sz < 0 {
				p.fail(val, "%s.%s %q is not a size like 64MiB or 1GiB", name, k.Value, val.Value)
			}
			*n = sz
			continue
		}
		p.fail(k, "unknown %s key %q (known: %s)", name, k.Value, known)
	}
	return true
}

// exportJetStream parses export_jetstream. host is the default subject's
// host name.
func (p *parser) exportJetStream(v *yaml.Node, host func() (string, error)) *JetStream {
	j := &JetStream{Memory: 64 << 20}
	if !p.settings("export_jetstream", v, exportKeys,
		map[string]*string{"url": &j.URL, "subject": &j.Subject, "stream": &j.Stream, "credentials": &j.Credentials, "inbox_prefix": &j.InboxPrefix},
		map[string]*int64{"memory": &j.Memory, "spool": &j.Spool}) {
		return nil
	}
	p.natsCommon(v, "export_jetstream", j.URL, j.Stream, j.InboxPrefix)
	switch {
	case j.Memory < 1 || j.Memory > 1<<31:
		p.fail(v, "export_jetstream.memory must be from 1 byte to 2GiB")
	case j.Spool != 0 && j.Spool < queue.MinSpool:
		p.fail(v, "export_jetstream.spool must be 0 (none) or at least %d bytes", queue.MinSpool)
	}
	if j.Subject == "" {
		h, err := host()
		if err == nil {
			j.Subject, err = jetstream.HostSubject(h)
		}
		if err != nil {
			p.fail(v, "export_jetstream.subject is not set, and this machine's name gives none: %v; set subject: audit.host.NAME", err)
		}
	} else if err := jetstream.CheckSubject(j.Subject); err != nil {
		p.fail(v, "export_jetstream.subject: %v", err)
	}
	if j.InboxPrefix == "" && j.Subject != "" {
		j.InboxPrefix = "_INBOX_" + j.Subject[strings.LastIndexByte(j.Subject, '.')+1:]
	}
	return j
}

func (p *parser) consumeJetStream(v *yaml.Node) *Consume {
	c := &Consume{}
	if !p.settings("consume_jetstream", v, consumeKeys,
		map[string]*string{"url": &c.URL, "stream": &c.Stream, "durable": &c.Durable, "subject": &c.Subject, "credentials": &c.Credentials, "inbox_prefix": &c.InboxPrefix}, nil) {
		return nil
	}
	p.natsCommon(v, "consume_jetstream", c.URL, c.Stream, c.InboxPrefix)
	if c.Stream == "" {
		p.fail(v, "consume_jetstream.stream is missing")
	}
	if c.Durable == "" {
		p.fail(v, "consume_jetstream.durable is missing")
	} else if err := jetstream.CheckName("durable", c.Durable); err != nil {
		p.fail(v, "consume_jetstream.%v", err)
	}
	if err := jetstream.CheckFilter(c.Subject); err != nil {
		p.fail(v, "consume_jetstream.subject: %v (like audit.tenant.TENANT.>)", err)
	}
	if c.InboxPrefix == "" {
		c.InboxPrefix = "_INBOX_" + c.Durable
	}
	return c
}

func (p *parser) natsCommon(v *yaml.Node, name, url, stream, inbox string) {
	if url == "" {
		p.fail(v, "%s.url is missing (nats://HOST:PORT, several comma-separated)", name)
	}
	if stream != "" {
		if err := jetstream.CheckName("stream", stream); err != nil {
			p.fail(v, "%s.%v", name, err)
		}
	}
	if inbox != "" && jetstream.CheckSubject(inbox) != nil {
		p.fail(v, "%s.inbox_prefix %q is not a subject", name, inbox)
	}
}

// resolveNATS makes the credentials paths absolute, relative to dir.
func (c *Config) resolveNATS(dir string) {
	for _, s := range []*string{exportCreds(c.ExportJetStream), consumeCreds(c.ConsumeJetStream)} {
		if s != nil && *s != "" && !filepath.IsAbs(*s) {
			*s = filepath.Join(dir, *s)
		}
	}
}

func exportCreds(j *JetStream) *string {
	if j == nil {
		return nil
	}
	return &j.Credentials
}

func consumeCreds(c *Consume) *string {
	if c == nil {
		return nil
	}
	return &c.Credentials
}
