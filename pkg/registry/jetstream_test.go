package registry

import (
	"strings"
	"testing"
)

func TestDeliverJetStream(t *testing.T) {
	c, err := Parse([]byte("name: shop\nid: 7\ndeliver: {jetstream: {url: \"nats://10.0.0.1:4222\", subject: audit.tenant.shop.web01, stream: AUDIT_TENANTS, credentials: /etc/audit/nats/web01.nk}}\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j := c.Deliver.JetStream
	if j == nil || j.URL != "nats://10.0.0.1:4222" || j.Subject != "audit.tenant.shop.web01" || j.Stream != "AUDIT_TENANTS" || j.Credentials != "/etc/audit/nats/web01.nk" {
		t.Errorf("%+v", j)
	}
	for _, tc := range []struct{ deliver, want string }{
		{"{jetstream: {subject: a.b}}", "c.yaml:3:22: deliver.jetstream.url is missing"},
		{"{jetstream: {url: n, subject: 'audit.tenant.>'}}", "wildcard"},
		{"{jetstream: {url: n, subject: 'a b'}}", "not allowed"},
		{"{jetstream: {url: n, stream: a.b}}", `deliver.jetstream.stream "a.b"`},
		{"{jetstream: {url: n, credentials: rel/x.nk}}", "deliver.jetstream.credentials"},
		{"{jetstream: {url: n, subjekt: a}}", `unknown deliver.jetstream key "subjekt"`},
		{"{jetstream: {url: n}, file: /a}", "deliver has jetstream and file or remote"},
		{"{jetstream: nats://h:1}", "deliver.jetstream is a mapping"},
	} {
		_, err := Parse([]byte("name: shop\nid: 7\ndeliver: "+tc.deliver+"\n"), "c.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.deliver, err, tc.want)
		}
	}
}
