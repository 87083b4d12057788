package control_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

func TestParseRemoteDest(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1/32:6000", "127.0.0.1/32:6000", true},
		{"10.1.2.3/16:60-70", "10.1.0.0/16:60-70", true},
		{"127.0.0.1:60", "127.0.0.1/32:60", true},
		{"fd00::/8:60", "fd00::/8:60", true},
		{"[::1]:60", "::1/128:60", true},
		{"127.0.0.1/32", "", false},
		{"127.0.0.1/32:0", "", false},
		{"127.0.0.1/32:70-60", "", false},
		{"localhost:60", "", false},
		{"127.0.0.1/32:x", "", false},
	} {
		d, err := control.ParseRemoteDest(tc.in)
		if (err == nil) != tc.ok || (tc.ok && d.String() != tc.want) {
			t.Errorf("%q: %v %v, want %q ok=%v", tc.in, d, err, tc.want, tc.ok)
		}
	}
	d, _ := control.ParseRemoteDest("10.0.0.0/8:60-70")
	for ap, want := range map[string]bool{"10.9.9.9:60": true, "10.9.9.9:71": false, "11.0.0.1:60": false, "[::ffff:10.0.0.1]:65": true} {
		if got := d.Allows(netip.MustParseAddrPort(ap)); got != want {
			t.Errorf("%s allows %s: %v", d, ap, got)
		}
	}
}

// TestScopedIDs: an id registered through a scoped socket must have the
// scope's id as an ancestor in its chain; one that cannot be shown to is
// refused (fail closed).
func TestScopedIDs(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant-a", Policy: policy(control.ScopePolicy{})}))
	register := func(name string, id uint64) error {
		src := fmt.Sprintf("name: %s\nid: %d\nparent: tenant-a\ndeliver: {file: /srv/audit/tenant/a/%s.log}\n", name, id, name)
		_, err := c.Register(ctx, "x.yaml", []byte(src), false)
		return err
	}
	hostChains[500] = []uint64{500, 102, 101, 100}
	hostChains[501] = []uint64{501, 100} // in tenant, not in tenant-a
	hostChains[502] = []uint64{503, 101} // not its own chain
	defer func() { delete(hostChains, 500); delete(hostChains, 501); delete(hostChains, 502) }()
	if err := register("deep", 500); err != nil {
		t.Errorf("an id nested in the scope: %v", err)
	}
	for _, tc := range []struct {
		id   uint64
		want string
	}{
		{201, `id 201 is not inside "tenant-a" (contid 101): its chain is 201,^200`},
		{501, "its chain is 501,^100"},
		{101, `the id of "tenant-a" itself`},
		{502, "is not its own"},
		{777777, "cannot establish that it is inside"},
	} {
		wantCode(t, register(fmt.Sprint("x", tc.id), tc.id), control.CodeForbidden, tc.want)
	}
	nochains := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant-a"}))
	_, err := nochains.Register(ctx, "x.yaml", []byte("name: y\nid: 500\nparent: tenant-a\ndeliver: {file: /srv/audit/tenant/a/y.log}\n"), false)
	wantCode(t, err, control.CodeForbidden, "no source of container chains")
}

func TestScopedRemotePolicy(t *testing.T) {
	parse := func(src string) *registry.Container {
		c, err := registry.Parse([]byte(src), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tree, err := registry.Build([]*registry.Container{
		parse("name: ns\ncgroup: /sys/fs/cgroup/ns\ndeliver: {remote: \"127.0.0.1:1\", netns: /run/netns/ns}\n"),
		parse("name: host\ncgroup: /sys/fs/cgroup/host\ndeliver: {remote: \"127.0.0.1:1\"}\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := control.ParseRemoteDest("127.0.0.1/32:6000-6009")
	strict := &control.ScopePolicy{RemoteAllow: []control.RemoteDest{allow}}
	open := &control.ScopePolicy{RemoteAllow: []control.RemoteDest{allow}, RemoteHostNetNS: true}
	child := func(scope, remote, netns string) *registry.Container {
		src := fmt.Sprintf("name: c\nparent: %s\ncgroup: /sys/fs/cgroup/%s/c\ndeliver: {remote: %q", scope, scope, remote)
		if netns != "" {
			src += ", netns: " + netns
		}
		return parse(src + "}\n")
	}
	for _, tc := range []struct {
		scope, remote, netns string
		p                    *control.ScopePolicy
		want                 string // "" for allowed
	}{
		{"ns", "127.0.0.1:6000", "/run/netns/ns", strict, ""},
		{"ns", "127.0.0.1:6010", "/run/netns/ns", strict, "not in the host's scoped_remote_allow (127.0.0.1/32:6000-6009)"},
		{"ns", "10.0.0.1:6000", "/run/netns/ns", strict, "scoped_remote_allow"},
		{"ns", "127.0.0.1:6000", "/run/netns/ns", &control.ScopePolicy{}, "empty: no remote target is allowed"},
		{"ns", "127.0.0.1:6000", "", strict, `deliver.netns "" is not the network namespace of "ns"`},
		{"ns", "127.0.0.1:6000", "/proc/1/ns/net", open, "is not the network namespace"},
		{"ns", "db.internal:6000", "/run/netns/ns", strict, "by IP address"},
		{"host", "127.0.0.1:6000", "", strict, "scoped_remote_host_netns: yes"},
		{"host", "127.0.0.1:6000", "", open, ""},
		{"host", "127.0.0.1:22", "", open, "scoped_remote_allow"},
		{"host", "127.0.0.1:6000", "/run/netns/other", open, "is not the network namespace"},
	} {
		err := control.CheckScope(tree, tc.scope, child(tc.scope, tc.remote, tc.netns), tc.p)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
}

// TestScopedQuota: the containers inside a scope are bounded in number
// and in queue bytes, by the scope's own quota or the policy's default,
// over the whole subtree (nested scopes included).
func TestScopedQuota(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant", Policy: policy(control.ScopePolicy{Quota: registry.Quota{Containers: 4, Spool: 100 << 20}})}))
	register := func(name, parent, queue string) error {
		src := fmt.Sprintf("name: %s\nid: %d\nparent: %s\ndeliver: {file: /srv/audit/tenant/%s.log}\nqueue: %s\n", name, 1000+nextID.Add(1), parent, name, queue)
		_, err := c.Register(ctx, "q.yaml", []byte(src), false)
		return err
	}
	// tenant-a and tenant-a1 are inside already: two more fit.
	if err := register("q1", "tenant-a1", "{memory: 1MiB, spool: 60MiB}"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, register("q2", "tenant", "{memory: 1MiB, spool: 41MiB}"), control.CodeForbidden,
		`the quota of "tenant" is exceeded: spool inside it would total 105906176 bytes, quota.spool is 104857600`)
	if err := register("q2", "tenant", "{memory: 1MiB}"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, register("q3", "tenant-a", "{memory: 1KiB}"), control.CodeForbidden,
		`the quota of "tenant" is exceeded: 5 containers inside it, quota.containers is 4`)
	// A replace does not count twice.
	_, err := c.Register(ctx, "q.yaml", []byte("name: q2\nid: 1999\nparent: tenant\ndeliver: {file: /srv/audit/tenant/q2.log}\nqueue: {memory: 2MiB}\n"), true)
	if err != nil {
		t.Errorf("replacing within the quota: %v", err)
	}
}

func TestQuotaOfScopeFile(t *testing.T) {
	c, err := registry.Parse([]byte("name: s\nid: 1\ndeliver: {file: /x/y}\nquota: {containers: 2, memory: 8MiB, spool: 1GiB}\n"), "s.yaml")
	if err != nil || c.Quota == nil || *c.Quota != (registry.Quota{Containers: 2, Memory: 8 << 20, Spool: 1 << 30}) {
		t.Fatalf("%+v %v", c.Quota, err)
	}
	for _, src := range []string{"quota: {containers: 0}", "quota: {memory: lots}", "quota: {disk: 1}", "quota: 5"} {
		if _, err := registry.Parse([]byte("name: s\nid: 1\ndeliver: {file: /x/y}\n"+src+"\n"), "s.yaml"); err == nil {
			t.Errorf("%s: accepted", src)
		}
	}
}

// TestScopedJetStreamRefused: a container registered through a scoped
// socket cannot name a jetstream target (server, credentials file and
// subject are the host admin's).
func TestScopedJetStreamRefused(t *testing.T) {
	parse := func(src string) *registry.Container {
		c, err := registry.Parse([]byte(src), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tree, err := registry.Build([]*registry.Container{
		parse("name: host\ncgroup: /sys/fs/cgroup/host\ndeliver: {remote: \"127.0.0.1:1\"}\n"),
	})
	if err != nil {
		t.Fatal(err)
	}
	allow, _ := control.ParseRemoteDest("0.0.0.0/0:1-65535")
	p := &control.ScopePolicy{RemoteAllow: []control.RemoteDest{allow}, RemoteHostNetNS: true}
	c := parse("name: c\nparent: host\ncgroup: /sys/fs/cgroup/host/c\ndeliver: {jetstream: {url: \"nats://127.0.0.1:4222\", subject: audit.host.other, credentials: /etc/shadow}}\n")
	err = control.CheckScope(tree, "host", c, p)
	if err == nil || !strings.Contains(err.Error(), "deliver.jetstream can be given only through the host's socket") {
		t.Errorf("a scoped jetstream target: %v", err)
	}
}

// TestScopedDefaultMemoryFollowsTheQuota: a container registered through
// a scoped socket without a queue.memory of its own gets the default, or
// less when its scope's own queue is smaller or an enclosing quota has
// less left, instead of being refused; one that names its memory keeps it
// and is checked as it is.
func TestScopedDefaultMemoryFollowsTheQuota(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	// tenant-a and tenant-a1 hold the default each already.
	quota := int64(2*registry.DefaultMemory + 3<<20)
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant", Policy: policy(control.ScopePolicy{Quota: registry.Quota{Memory: quota}})}))
	memoryOf := func(name string) int64 {
		t.Helper()
		d := b.Tree().ByName(name)
		if d == nil {
			t.Fatalf("%s is not registered", name)
		}
		return d.Queue.Memory
	}
	// The scope's own queue is 4MiB: smaller than the default.
	if _, err := c.Register(ctx, "d.yaml", []byte(child("d1", "tenant-a", "")), false); err != nil {
		t.Fatalf("a container of default size inside a scope whose queue is smaller: %v", err)
	}
	if m := memoryOf("d1"); m != 3<<20 {
		t.Errorf("d1 has %d bytes of queue memory, want the 3MiB the quota left", m)
	}
	wantCode(t, register(t, c, child("d2", "tenant", "")), control.CodeForbidden, `the quota of "tenant" is exceeded`)
	if _, err := c.Register(ctx, "d.yaml", []byte(child("d1", "tenant-a", "queue: {spool: 1MiB}\n")), true); err != nil {
		t.Fatalf("replacing d1, its memory left to the daemon: %v", err)
	}
	if m := memoryOf("d1"); m != 3<<20 {
		t.Errorf("d1 replaced has %d bytes of queue memory, want 3MiB: it does not count against itself", m)
	}
	wantCode(t, register(t, c, child("d1", "tenant-a", "queue: {memory: 4MiB}\n"), true), control.CodeForbidden,
		`the quota of "tenant" is exceeded: queue memory inside it would total`)
}

func register(t *testing.T, c *control.Client, src string, replace ...bool) error {
	t.Helper()
	_, err := c.Register(context.Background(), "d.yaml", []byte(src), len(replace) > 0 && replace[0])
	return err
}
