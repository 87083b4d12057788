package config

import (
	"strings"
	"testing"
)

func TestExportJetStream(t *testing.T) {
	c, err := Parse([]byte(`
export_jetstream:
  url: nats://127.0.0.1:4222,nats://127.0.0.1:4223
  subject: audit.host.web01
  stream: AUDIT_HOSTS
  credentials: nats/host.nk
  spool: 64MiB
`), "/etc/audit/auditd-ns.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j := c.ExportJetStream
	if j == nil || j.URL != "nats://127.0.0.1:4222,nats://127.0.0.1:4223" || j.Subject != "audit.host.web01" || j.Stream != "AUDIT_HOSTS" ||
		j.Credentials != "/etc/audit/nats/host.nk" || j.InboxPrefix != "_INBOX_web01" || j.Memory != 64<<20 || j.Spool != 64<<20 {
		t.Errorf("%+v", j)
	}
	c, err = Parse([]byte("export_jetstream: {url: nats://h:1}\n"), "/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ExportJetStream.Subject, "audit.host.") {
		t.Errorf("default subject %q", c.ExportJetStream.Subject)
	}
}

func TestConsumeJetStream(t *testing.T) {
	c, err := Parse([]byte(`
local_events: no
consume_jetstream: {url: nats://h:1, stream: AUDIT_TENANTS, durable: shop, subject: audit.tenant.shop.>, credentials: /etc/t.creds}
`), "/x.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cj := c.ConsumeJetStream; cj == nil || cj.Durable != "shop" || cj.InboxPrefix != "_INBOX_shop" || cj.Subject != "audit.tenant.shop.>" {
		t.Errorf("%+v", cj)
	}
}

// TestJetStreamBad: each bad setting is named with its place.
func TestJetStreamBad(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"export_jetstream: {subject: audit.host.a}\n", "x.yaml:1:19: export_jetstream.url is missing"},
		{"export_jetstream: {url: nats://h:1, subject: audit.host.>}\n", "wildcard"},
		{"export_jetstream: {url: nats://h:1, subject: 'audit.host.a b'}\n", "not allowed"},
		{"export_jetstream: {url: nats://h:1, stream: A.B}\n", "export_jetstream.stream \"A.B\""},
		{"export_jetstream: {url: nats://h:1, spool: 1KiB}\n", "spool must be 0"},
		{"export_jetstream: {url: nats://h:1, subjcet: a}\n", "x.yaml:1:37: unknown export_jetstream key \"subjcet\""},
		{"export_jetstream: nats://h:1\n", "export_jetstream is a mapping"},
		{"export_jetstream: {url: nats://h:1, url: nats://h:2}\n", "url is given twice"},
		{"local_events: no\nconsume_jetstream: {url: nats://h:1, stream: S, durable: a.b, subject: audit.tenant.a.>}\n", "durable \"a.b\""},
		{"local_events: no\nconsume_jetstream: {url: nats://h:1, stream: S, durable: a, subject: 'audit.>.a'}\n", "'>' must be the last"},
		{"consume_jetstream: {url: nats://h:1, stream: S, durable: a, subject: audit.tenant.a.>}\n", "needs local_events: no"},
	} {
		_, err := Parse([]byte(c.src), "x.yaml")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want %q", c.src, err, c.want)
		}
	}
}
