package jetstream

import (
	"strings"
	"testing"
)

func TestToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"host-a", "host-a"},
		{"web01.example.com", "web01_example_com"},
		{"Tenant_7", "Tenant_7"},
	} {
		got, err := Token("host", c.in)
		if err != nil || got != c.want {
			t.Errorf("Token(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, c := range []struct{ in, why string }{
		{"", "empty"},
		{"a b", "byte 1"},
		{"a*", "byte 1"},
		{"a.>", "byte 2"},
		{">", "byte 0"},
		{"a\nb", "byte 1"},
		{"a\x00", "byte 1"},
		{"$SYS", "byte 0"},
		{"ünï", "byte 0"},
		{".a", "empty label"},
		{"a.", "empty label"},
		{"a..b", "empty label"},
		{strings.Repeat("a", 129), "at most 128"},
	} {
		got, err := Token("tenant", c.in)
		if err == nil {
			t.Errorf("Token(%q) = %q, want an error", c.in, got)
			continue
		}
		if !strings.Contains(err.Error(), c.why) || !strings.HasPrefix(err.Error(), "tenant name") {
			t.Errorf("Token(%q): %v; want it to name the tenant and say %q", c.in, err, c.why)
		}
	}
}

func TestSubjects(t *testing.T) {
	if s, err := HostSubject("web01.example.com"); err != nil || s != "audit.host.web01_example_com" {
		t.Errorf("HostSubject: %q, %v", s, err)
	}
	if s, err := TenantSubject("shop", "web01"); err != nil || s != "audit.tenant.shop.web01" {
		t.Errorf("TenantSubject: %q, %v", s, err)
	}
	if _, err := TenantSubject("a.>", "web01"); err == nil {
		t.Error("TenantSubject took a tenant a.>")
	}
	if s, err := TenantFilter("shop"); err != nil || s != "audit.tenant.shop.>" {
		t.Errorf("TenantFilter: %q, %v", s, err)
	}
	for _, s := range []string{"", "a..b", "a.*", "a.>", "a b", "a.\x01", ".a", "a."} {
		if CheckSubject(s) == nil {
			t.Errorf("CheckSubject(%q) passed", s)
		}
	}
	for _, s := range []string{"a.>.b", "a.b*", "", "a..>"} {
		if CheckFilter(s) == nil {
			t.Errorf("CheckFilter(%q) passed", s)
		}
	}
	if err := CheckFilter("audit.tenant.*.>"); err != nil {
		t.Error(err)
	}
	p := &Publisher{Conn: Conn{URL: "nats://127.0.0.1:1"}, Subject: "audit.host.>", Queue: openQueue(t)}
	if err := p.Check(); err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("a publisher on audit.host.>: %v, want a wildcard refused", err)
	}
}

func TestMsgID(t *testing.T) {
	lines := []string{
		"type=SYSCALL msg=audit(1764800000.123:77): a=b",
		"type=PATH msg=audit(1764800000.123:77): item=0",
		"node=x type=PATH msg=audit(1764800000.123:77): item=1",
		"type=USER msg=audit(1764800000.124:78): msg='audit(1.2:3)'",
		"no header",
		"type=X msg=audit(12:34): no dot",
		"type=X msg=audit(1.2:3x): bad serial",
		"type=DAEMON_START msg=audit(1764800000.123:77): op=start",
		"type=SYSCALL msg=audit(1764800000.123:77): a=b",
		"node=x type=DAEMON_ROTATE msg=audit(1764800000.123:77): op=rotate",
		"node=x type=DAEMON_ROTATE msg=audit(1764800000.123:77): op=rotate",
		"node=type=DAEMON_END msg=audit(1764800000.123:77): op=end",
	}
	want := []string{
		"h:1764800000.123:77:0",
		"h:1764800000.123:77:1",
		"h:1764800000.123:77:2",
		"h:1764800000.124:78:0",
		"h:q:5",
		"h:q:6",
		"h:q:7",
		"h:d:1764800000.123:77:0",
		"h:1764800000.123:77:0",
		"h:d:1764800000.123:77:0",
		"h:d:1764800000.123:77:1",
		"h:1764800000.123:77:0",
	}
	var pos position
	for i, l := range lines {
		pos, _ = pos.next([]byte(l))
		if got := string(appendMsgID(nil, "h", pos, uint64(i+1))); got != want[i] {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
}
