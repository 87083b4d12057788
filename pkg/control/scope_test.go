package control_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

var nextID atomic.Uint64

func child(name, parent, extra string) string {
	return fmt.Sprintf("name: %s\nid: %d\nparent: %s\ndeliver: {file: /srv/audit/tenant/%s.log}\n%s", name, 1000+nextID.Add(1), parent, name, extra)
}

func TestScopedSocket(t *testing.T) {
	b := newBackend(t)
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant", Policy: policy(control.ScopePolicy{})}))
	ctx := context.Background()
	register := func(src string) error {
		_, err := c.Register(ctx, "nested.yaml", []byte(src), false)
		return err
	}

	if err := register(child("job", "tenant", "")); err != nil {
		t.Fatalf("registering inside the scope: %v", err)
	}
	if err := register(child("job2", "tenant-a1", "")); err != nil {
		t.Fatalf("registering deeper inside the scope: %v", err)
	}
	for _, tc := range []struct{ name, src, contains string }{
		{"no parent", "name: top\nid: 9\ndeliver: {file: /srv/audit/tenant/top.log}\n", "needs a parent"},
		{"parent outside", child("stray", "other", ""), `parent "other" is not a registered container inside "tenant"`},
		{"unknown parent", child("stray", "ghost", ""), `parent "ghost"`},
		{"itself", "name: tenant\nid: 100\nparent: tenant-a\ndeliver: {file: /srv/audit/tenant/x.log}\n", "its own container"},
		{"name outside", "name: other\nid: 200\nparent: tenant\ndeliver: {file: /srv/audit/tenant/x.log}\n", "registered outside"},
		{"file outside", "name: esc\nid: 9\nparent: tenant\ndeliver: {file: /etc/cron.d/x}\n", `deliver.file "/etc/cron.d/x" is not inside "/srv/audit/tenant"`},
		{"remote from the host", "name: esc\nid: 9\nparent: tenant\ndeliver: {remote: \"10.0.0.1:60\"}\n", "delivers to a file"},
		{"kernel rules", child("kr", "tenant", "kernel_rules: [\"-a always,exit -S execve\"]\n"), "kernel_rules"},
		{"big queue", child("big", "tenant", "queue: {memory: 1GiB}\n"), "exceed"},
		{"socket elsewhere", child("sock", "tenant", "socket: /run/x.sock\n"), `socket "/run/x.sock"`},
		{"file owner", "name: own\nid: 9\nparent: tenant\ndeliver: {file: /srv/audit/tenant/own.log, file_owner: \"0:0\"}\n", "deliver.file_owner can be given only through the host's socket"},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, register(tc.src), control.CodeForbidden, tc.contains) })
	}
	for _, tc := range []struct{ name, src, contains string }{
		{"file dotdot", "name: esc\nid: 9\nparent: tenant\ndeliver: {file: /srv/audit/tenant/../x.log}\n", `deliver.file "/srv/audit/tenant/../x.log" must not contain a ".." element`},
		{"file double slash", "name: esc\nid: 9\nparent: tenant\ndeliver: {file: /srv/audit/tenant//x.log}\n", `must not contain "//"`},
		{"socket dotdot", child("esc", "tenant", "socket: /run/auditd-ns/tenant/../../x.sock\n"), `socket "/run/auditd-ns/tenant/../../x.sock" must not contain a ".." element`},
		{"name dotdot", "name: ..\nid: 9\nparent: tenant\ndeliver: {file: /srv/audit/tenant/x.log}\n", `name ".." is refused`},
		{"name dot", "name: .\nid: 9\nparent: tenant\ndeliver: {file: /srv/audit/tenant/x.log}\n", `name "." is refused`},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, register(tc.src), control.CodeInvalid, tc.contains) })
	}
	if err := register(child("sock", "tenant", "socket: /run/auditd-ns/tenant/sock.sock\n")); err != nil {
		t.Errorf("a socket next to the scope's own: %v", err)
	}

	_, err := c.Unregister(ctx, "tenant", "", 0)
	wantCode(t, err, control.CodeForbidden, `"tenant" is this socket's own`)
	_, err = c.Unregister(ctx, "other", "", 0)
	wantCode(t, err, control.CodeForbidden, `"other" is not inside "tenant"`)
	_, err = c.Unregister(ctx, "ghost", "", 0)
	wantCode(t, err, control.CodeNotFound, `no container "ghost" inside "tenant"`)
	rules := []byte("- keep: {type: EXECVE}\n")
	_, err = c.PushRules(ctx, "other", "r.yaml", rules)
	wantCode(t, err, control.CodeForbidden, `"other" is not inside "tenant"`)
	_, err = c.PushRules(ctx, "tenant", "r.yaml", rules)
	wantCode(t, err, control.CodeForbidden, "this socket's own")
	if _, err := c.PushRules(ctx, "tenant-a", "r.yaml", rules); err != nil {
		t.Errorf("pushing rules inside the scope: %v", err)
	}
	if _, err := c.Unregister(ctx, "job", control.ModeSpool, 0); err != nil {
		t.Errorf("unregistering inside the scope: %v", err)
	}

	cs, err := c.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(cs), "tenant sock tenant-a tenant-a1 job2"; got != want {
		t.Errorf("a scoped socket lists %q, want %q", got, want)
	}
	b.SetJetStream(&control.ExportStatus{URL: "nats://10.0.0.11:4222", Subject: "audit.host.web01", LastError: "host's error"},
		&control.ConsumeStatus{URL: "nats://10.0.0.11:4222", Durable: "security"})
	b.SetTracker(&control.TrackerStatus{Attribution: control.AttributionCgroup, ExecMissed: 1})
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Kernel != nil || st.HostLog != nil || st.Router != nil || st.Tracker != nil || st.Export != nil || st.Consume != nil || len(st.Containers) != 5 {
		t.Errorf("a scoped socket's status shows the host's figures or others' containers: %+v", st)
	}
	if got := strings.Join(b.Calls(), "|"); got != "register job|register job2|register sock|rules-push tenant-a|unregister job spool 30s" {
		t.Errorf("backend calls: %s", got)
	}
}

// TestScopedSiblings: a socket scoped to tenant-a may not touch its
// sibling's subtree nor its parent.
func TestScopedSiblings(t *testing.T) {
	b := newBackend(t)
	ctx := context.Background()
	admin := dial(t, serve(t, &control.Server{Backend: b}))
	if _, err := admin.Register(ctx, "b.yaml", []byte(child("tenant-b", "tenant", "")), false); err != nil {
		t.Fatal(err)
	}
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant-a", Policy: policy(control.ScopePolicy{})}))
	_, err := c.PushRules(ctx, "tenant-b", "r.yaml", []byte("- keep: {type: EXECVE}\n"))
	wantCode(t, err, control.CodeForbidden, `"tenant-b" is not inside "tenant-a"`)
	_, err = c.Unregister(ctx, "tenant", "", 0)
	wantCode(t, err, control.CodeForbidden, `"tenant" is not inside "tenant-a"`)
	_, err = c.Register(ctx, "x.yaml", []byte(child("x", "tenant-b", "")), false)
	wantCode(t, err, control.CodeForbidden, `parent "tenant-b"`)
}

// TestScopeGuardAtChange: the Backend runs the scope check again on the
// tree it changes, so a change made between the check and the call (here
// the admin moving tenant-a out of tenant) is caught.
func TestScopeGuardAtChange(t *testing.T) {
	b := newBackend(t)
	tree := b.Tree()
	src := child("job", "tenant-a", "queue: {memory: 1MiB}\n") // within tenant's own
	c, err := registry.Parse([]byte(src), "job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c, err = control.Confine(tree, "tenant", c); err != nil {
		t.Fatal(err)
	}
	if err := control.CheckScope(tree, "tenant", c, policy(control.ScopePolicy{})()); err != nil {
		t.Fatal(err)
	}
	moved, err := registry.Parse([]byte(strings.Replace(hostFiles["tenant-a.yaml"], "parent: tenant", "parent: other", 1)), "tenant-a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree2, err := tree.With(moved)
	if err != nil {
		t.Fatal(err)
	}
	if err := control.CheckScope(tree2, "tenant", c, policy(control.ScopePolicy{})()); err == nil {
		t.Fatal("the check passed on a tree where the parent left the scope")
	}
}

func TestCheckPeer(t *testing.T) {
	b := newBackend(t)
	proc := t.TempDir()
	pid := os.Getpid()
	pdir := filepath.Join(proc, fmt.Sprint(pid))
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant", Proc: proc, Policy: policy(control.ScopePolicy{})}))
	ctx := context.Background()
	status := func() error { _, err := c.Status(ctx); return err }

	if err := status(); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Errorf("no /proc/PID for the peer: %v", err)
	}
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := status(); err != nil {
		t.Errorf("stock kernel (no audit_containerid): %v", err)
	}
	for _, tc := range []struct {
		contid string
		ok     bool
		msg    string
	}{
		{"100\n", true, ""},
		{"102", true, ""},
		{"200", false, "contid 200) is not in \"tenant\" (contid 100)"},
		{"999", false, "is not in"},
		{"18446744073709551615", false, "is in no container"},
		{"junk", false, "junk"},
	} {
		if err := os.WriteFile(filepath.Join(pdir, "audit_containerid"), []byte(tc.contid), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := c.Register(ctx, "j.yaml", []byte(child(fmt.Sprintf("job%d", nextID.Add(1)), "tenant", "")), false)
		if tc.ok && err != nil {
			t.Errorf("peer contid %s: %v", tc.contid, err)
		}
		if !tc.ok {
			wantCode(t, err, control.CodeForbidden, tc.msg)
		}
	}
}

func TestCheckPeerScopeWithoutID(t *testing.T) {
	proc := t.TempDir()
	os.MkdirAll(filepath.Join(proc, "7"), 0o755)
	os.WriteFile(filepath.Join(proc, "7", "audit_containerid"), []byte("5"), 0o600)
	c, err := registry.Parse([]byte("name: cg\ncgroup: /sys/fs/cgroup/cg\ndeliver: {file: /x/y}\n"), "cg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	err = control.CheckPeer(proc, 7, tree, "cg")
	if err == nil || !strings.Contains(err.Error(), "has no audit container ID") {
		t.Errorf("got %v", err)
	}
	if err := control.CheckPeer(proc, 7, tree, "gone"); err == nil {
		t.Error("a scope that is not registered passed")
	}
}

func TestScopeCgroup(t *testing.T) {
	parse := func(src string) *registry.Container {
		c, err := registry.Parse([]byte(src), "t.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tree, err := registry.Build([]*registry.Container{parse("name: s\ncgroup: /sys/fs/cgroup/s\ndeliver: {remote: \"127.0.0.1:1\", netns: /run/netns/s}\n")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src string
		ok  bool
	}{
		{"name: a\nparent: s\ncgroup: /sys/fs/cgroup/s/a\ndeliver: {remote: \"10.0.0.2:60\", netns: /run/netns/s}\n", true},
		{"name: a\nparent: s\ncgroup: /sys/fs/cgroup/s\ndeliver: {remote: \"10.0.0.2:60\", netns: /run/netns/s}\n", false},
		{"name: a\nparent: s\ncgroup: /sys/fs/cgroup/sx/a\ndeliver: {remote: \"10.0.0.2:60\", netns: /run/netns/s}\n", false},
		{"name: a\nparent: s\ncgroup: /sys/fs/cgroup/s/a\ndeliver: {remote: \"10.0.0.2:60\", netns: /proc/1/ns/net}\n", false},
		{"name: a\nparent: s\ncgroup: /sys/fs/cgroup/s/a\ndeliver: {file: /var/log/a.log}\n", false},
	} {
		allow, _ := control.ParseRemoteDest("10.0.0.0/8:60")
		err := control.CheckScope(tree, "s", parse(tc.src), &control.ScopePolicy{RemoteAllow: []control.RemoteDest{allow}})
		if (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.src, err, tc.ok)
		}
	}
}

// TestScopeConfinesFileTargets: a file target registered through a scoped
// socket is confined to the directory of the scope's own file target,
// whatever deliver.beneath the caller gave, and keeps it in its source.
func TestScopeConfinesFileTargets(t *testing.T) {
	b := newBackend(t)
	c := dial(t, serve(t, &control.Server{Backend: b, Scope: "tenant", Policy: policy(control.ScopePolicy{})}))
	for _, src := range []string{
		"name: conf1\nid: 9001\nparent: tenant\ndeliver: {file: /srv/audit/tenant/c/1.log}\n",
		"name: conf2\nid: 9002\nparent: tenant\ndeliver: {file: /srv/audit/tenant/2.log, beneath: /srv}\n",
	} {
		if _, err := c.Register(context.Background(), "c.yaml", []byte(src), false); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"conf1", "conf2"} {
		got := b.Tree().ByName(name)
		if got == nil || got.Deliver.Beneath != "/srv/audit/tenant" {
			t.Fatalf("%s registered as %+v, want deliver.beneath /srv/audit/tenant", name, got)
		}
		back, err := registry.Parse(got.Source, "stored.yaml")
		if err != nil || back.Deliver.Beneath != "/srv/audit/tenant" {
			t.Errorf("%s's stored source loses the confinement: %v\n%s", name, err, got.Source)
		}
	}
}
