package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// testDaemon runs the containers srcs (file targets under a temporary
// directory, given as format strings with %[1]s for it) with no kernel,
// no source and no control socket: enough for the backend's changes.
func testDaemon(t *testing.T, srcs ...string) (*Daemon, string) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StateDir = dir
	d := newTestDaemon(t, cfg)
	var cs []*registry.Container
	for i, src := range srcs {
		c, err := registry.Parse([]byte(fmt.Sprintf(src, dir)), fmt.Sprintf("c%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := d.conts.Load(d.life, cs); err != nil {
		t.Fatal(err)
	}
	return d, dir
}

// newTestDaemon is a daemon with cfg, its router running and no
// container, with no kernel, no source and no control socket; its services
// stop at the end of the test.
func newTestDaemon(tb testing.TB, cfg *config.Config) *Daemon {
	tb.Helper()
	d := newDaemon(context.Background(), cfg, hclog.NewNullLogger())
	d.router = router.New(router.Options{})
	store, err := registry.OpenStore(filepath.Join(cfg.StateDir, "containers"))
	if err != nil {
		tb.Fatal(err)
	}
	d.conts = d.newContainers(store, nil)
	ctx, cancel := context.WithCancel(d.life)
	d.routerStop, d.routerDone = cancel, make(chan struct{})
	d.serve("router", func() error {
		defer close(d.routerDone)
		return d.router.Run(ctx)
	})
	tb.Cleanup(func() {
		if err := d.stopServices(); err != nil {
			tb.Error(err)
		}
	})
	return d
}

// TestScopeGuardOnCurrentTree: the backend runs a scoped request's check
// on the tree as it is, not as the change would leave it, so a scoped
// replace cannot take over a container outside the scope, and a scoped
// unregister of a container inside it works.
func TestScopeGuardOnCurrentTree(t *testing.T) {
	d, dir := testDaemon(t,
		"name: tenant\ncgroup: /sys/fs/cgroup/t\ndeliver: {file: %[1]s/t/audit.log}\nsocket: %[1]s/t/ctl.sock\n",
		"name: job\nparent: tenant\ncgroup: /sys/fs/cgroup/t/job\ndeliver: {file: %[1]s/t/job.log}\n",
		"name: sibling\ncgroup: /sys/fs/cgroup/s\ndeliver: {file: %[1]s/s/audit.log}\n")
	b := backend{d}
	ctx := context.Background()
	for _, name := range []string{"sibling", "tenant"} {
		c, err := registry.Parse([]byte(fmt.Sprintf("name: %s\nparent: job\ncgroup: /sys/fs/cgroup/t/job/x\ndeliver: {file: %s/t/x.log}\n", name, dir)), "x.yaml")
		if err != nil {
			t.Fatal(err)
		}
		guard := func(t *registry.Tree) error { return control.CheckScope(t, "tenant", c, nil) }
		_, err = b.Register(ctx, c, control.RegisterOptions{Replace: true, Guard: guard})
		if !errors.Is(err, control.ErrForbidden) {
			t.Errorf("a scoped replace of %q: %v, want forbidden", name, err)
		}
	}
	if p := b.Tree().ByName("sibling").Parent; p != "" {
		t.Errorf("the sibling was taken over: its parent is %q", p)
	}
	guard := func(t *registry.Tree) error { return control.CheckScopeName(t, "tenant", "sibling") }
	if _, err := b.Unregister(ctx, "sibling", control.UnregisterOptions{Mode: control.ModeSpool, Timeout: time.Second, Guard: guard}); !errors.Is(err, control.ErrForbidden) {
		t.Errorf("a scoped unregister of the sibling: %v, want forbidden", err)
	}
	guard = func(t *registry.Tree) error { return control.CheckScopeName(t, "tenant", "job") }
	if _, err := b.Unregister(ctx, "job", control.UnregisterOptions{Mode: control.ModeDrain, Timeout: time.Second, Guard: guard}); err != nil {
		t.Errorf("a scoped unregister of its own child: %v", err)
	}
	if b.Tree().ByName("job") != nil {
		t.Error("job is still registered")
	}
}

func parseContainer(src string) (*registry.Container, error) {
	return registry.Parse([]byte(src), "c.yaml")
}

// TestReplaceStopsScopedSocket: replacing a container with one that names
// no socket closes the socket of the replaced one.
func TestReplaceStopsScopedSocket(t *testing.T) {
	d, dir := testDaemon(t)
	b := backend{d}
	ctx := context.Background()
	sock := filepath.Join(dir, "t.sock")
	for _, extra := range []string{"socket: " + sock + "\n", ""} {
		c, err := parseContainer(fmt.Sprintf("name: t\ncgroup: /sys/fs/cgroup/t\ndeliver: {file: %s/t.log}\n%s", dir, extra))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Register(ctx, c, control.RegisterOptions{Replace: true}); err != nil {
			t.Fatal(err)
		}
	}
	d.scoped.mu.Lock()
	_, ok := d.scoped.byName["t"]
	d.scoped.mu.Unlock()
	if ok {
		t.Error("the replaced container's scoped socket still runs")
	}
}

// TestPushRulesSaveFails: rules that cannot be saved are not applied, so
// the running rules and the saved ones never differ; the push is refused
// with the reason.
func TestPushRulesSaveFails(t *testing.T) {
	d, dir := testDaemon(t, "name: a\ncgroup: /sys/fs/cgroup/a\ndeliver: {file: %[1]s/a.log}\nrules:\n- drop: {type: SYSCALL}\n")
	b := backend{d}
	before := d.conts.Get("a").Routing().Rules()
	// The store's file is a directory with something in it: the save's
	// rename fails, for root too.
	if err := os.MkdirAll(filepath.Join(dir, "containers", "a.yaml", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	src := []byte("- keep: {type: SYSCALL}\n")
	p, err := rules.Parse(src, "new.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PushRules(context.Background(), "a", control.RulesUpdate{Rules: p, Source: src, File: "new.yaml"}); err == nil {
		t.Error("a push that could not be saved succeeded")
	}
	if got := d.conts.Get("a").Routing().Rules(); got != before {
		t.Error("the running rules changed although the new ones were not saved")
	}
	if c := b.Tree().ByName("a"); !strings.Contains(string(c.Source), "drop") {
		t.Errorf("the registry's source changed:\n%s", c.Source)
	}
	// Once the store can save again, the push applies and is saved.
	if err := os.RemoveAll(filepath.Join(dir, "containers", "a.yaml")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.PushRules(context.Background(), "a", control.RulesUpdate{Rules: p, Source: src, File: "new.yaml"}); err != nil {
		t.Fatal(err)
	}
	saved, err := os.ReadFile(filepath.Join(dir, "containers", "a.yaml"))
	if got := d.conts.Get("a").Routing().Rules(); got != p || err != nil || !strings.Contains(string(saved), "keep") {
		t.Errorf("after a good push: running %p (want %p), saved %q, %v", got, p, saved, err)
	}
}
