package deliver_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// fakeKernel keeps the rules loaded, and refuses the rule failOn.
type fakeKernel struct {
	mu     sync.Mutex
	loaded [][]byte
	failOn int // refuse the failOn-th AddRule (1-based), 0 never
	adds   int
}

func (k *fakeKernel) AddRule(wire []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.adds++
	if k.adds == k.failOn {
		return errors.New("refused")
	}
	k.loaded = append(k.loaded, bytes.Clone(wire))
	return nil
}

func (k *fakeKernel) DeleteRule(wire []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, w := range k.loaded {
		if bytes.Equal(w, wire) {
			k.loaded = append(k.loaded[:i], k.loaded[i+1:]...)
			return nil
		}
	}
	return errors.New("no such rule")
}

func (k *fakeKernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.loaded)
}

// fakeTarget delivers to memory; while stalled it delivers nothing.
type fakeTarget struct {
	mu      sync.Mutex
	got     []string
	stalled bool
	closed  bool
	ran     bool
}

func (f *fakeTarget) Run(ctx context.Context, r queue.Reader) error {
	f.mu.Lock()
	f.ran = true
	stalled := f.stalled
	f.mu.Unlock()
	if stalled {
		<-ctx.Done()
		return nil
	}
	for {
		items, err := r.Read(ctx, 8)
		if err != nil {
			return nil
		}
		f.mu.Lock()
		for _, it := range items {
			f.got = append(f.got, string(it.Data))
		}
		f.mu.Unlock()
		r.Commit(items[len(items)-1].Seq)
	}
}

func (f *fakeTarget) Status() deliver.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return deliver.Status{Connected: !f.stalled, Acked: uint64(len(f.got))}
}

func (f *fakeTarget) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return errors.New("closed twice")
	}
	f.closed = true
	return nil
}

type world struct {
	cs      *deliver.Containers
	kern    *fakeKernel
	mu      sync.Mutex
	targets map[string][]*fakeTarget // by name, in order made
	stall   map[string]bool
	attach  map[string]int // Attach minus Detach, by name
	refuse  string         // Attach refuses this name
	dir     string
}

func newWorld(t *testing.T, kernel bool) *world {
	t.Helper()
	w := &world{kern: &fakeKernel{}, targets: map[string][]*fakeTarget{}, stall: map[string]bool{}, attach: map[string]int{}, dir: t.TempDir()}
	store, err := registry.OpenStore(filepath.Join(w.dir, "containers"))
	if err != nil {
		t.Fatal(err)
	}
	opt := deliver.Options{
		Store:    store,
		Settings: func() deliver.Settings { return deliver.Settings{StateDir: w.dir} },
		Logger:   hclog.NewNullLogger(),
		NewTarget: func(c *registry.Container, s deliver.Settings, log hclog.Logger) (deliver.Target, error) {
			w.mu.Lock()
			defer w.mu.Unlock()
			f := &fakeTarget{stalled: w.stall[c.Name]}
			w.targets[c.Name] = append(w.targets[c.Name], f)
			return f, nil
		},
		Attach: func(t *deliver.Container) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			if t.Config().Name == w.refuse {
				return errors.New("attach refused")
			}
			w.attach[t.Config().Name]++
			return nil
		},
		Detach: func(t *deliver.Container) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.attach[t.Config().Name]--
		},
	}
	if kernel {
		opt.Kernel = w.kern
	}
	w.cs = deliver.New(opt)
	if err := w.cs.Load(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.cs.StopAll(0) })
	return w
}

func parse(t *testing.T, src string) *registry.Container {
	t.Helper()
	c, err := registry.Parse([]byte(src), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const withRules = "name: k\nid: 7\ndeliver: {file: /x}\nkernel_rules: ['-a always,exit -S execve -k x', '-a always,exit -S openat -k y']\n"

// Kernel rules are loaded scoped to the contid as a container starts and
// removed as it goes; on a kernel without the patches such a container is
// refused with ErrNotSupported.
func TestKernelRulesFollowTheContainer(t *testing.T) {
	w := newWorld(t, true)
	if _, err := w.cs.Register(parse(t, withRules), deliver.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := w.kern.count(); n != 2 {
		t.Fatalf("%d kernel rules loaded, want 2", n)
	}
	if _, err := w.cs.Unregister(context.Background(), "k", deliver.UnregisterOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := w.kern.count(); n != 0 {
		t.Errorf("%d kernel rules left after unregistering, want 0", n)
	}

	w = newWorld(t, false)
	_, err := w.cs.Register(parse(t, withRules), deliver.RegisterOptions{})
	if !errors.Is(err, source.ErrNotSupported) || !errors.Is(err, deliver.ErrInvalid) {
		t.Errorf("kernel_rules on a stock kernel: %v, want ErrNotSupported and ErrInvalid", err)
	}
	if w.cs.Tree().ByName("k") != nil || w.cs.Len() != 0 {
		t.Error("the refused container is registered")
	}
}

// A start that fails half-way (the kernel refuses the second rule) undoes
// all it did: the first rule is removed, the attachment detached, and no
// target is made.
func TestFailedStartUndoes(t *testing.T) {
	w := newWorld(t, true)
	w.kern.failOn = 2
	if _, err := w.cs.Register(parse(t, withRules), deliver.RegisterOptions{}); err == nil {
		t.Fatal("a start the kernel refused succeeded")
	}
	if n := w.kern.count(); n != 0 {
		t.Errorf("%d kernel rules left, want 0", n)
	}
	if w.attach["k"] != 0 || len(w.targets["k"]) != 0 {
		t.Errorf("attached %d, targets %d; want 0, 0", w.attach["k"], len(w.targets["k"]))
	}
	if _, err := os.Stat(filepath.Join(w.dir, "containers", "k.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a registration that did not start is saved: %v", err)
	}
}

// A replacement that cannot start leaves the replaced container running,
// with its queue.
func TestRefusedReplaceRestartsTheOld(t *testing.T) {
	w := newWorld(t, false)
	if _, err := w.cs.Register(parse(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x}\n"), deliver.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.refuse = "a"
	w.mu.Unlock()
	_, err := w.cs.Register(parse(t, "name: a\ncgroup: /cg/b\ndeliver: {file: /y}\n"), deliver.RegisterOptions{Replace: true})
	if !errors.Is(err, deliver.ErrInvalid) {
		t.Fatalf("a refused replacement: %v", err)
	}
	w.mu.Lock()
	w.refuse = ""
	w.mu.Unlock()
	// The old one could not be re-attached either (same name): it is not
	// running, but still registered as it was.
	if c := w.cs.Tree().ByName("a"); c == nil || c.Cgroup != "/cg/a" {
		t.Errorf("the registration after a refused replace: %+v", c)
	}
	if b, err := os.ReadFile(filepath.Join(w.dir, "containers", "a.yaml")); err != nil || !strings.Contains(string(b), "/cg/a") {
		t.Errorf("the saved registration after a refused replace: %v\n%s", err, b)
	}
	if _, err := w.cs.Register(parse(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x}\n"), deliver.RegisterOptions{}); !errors.Is(err, deliver.ErrExists) {
		t.Errorf("registering an existing name without replace: %v, want ErrExists", err)
	}
}

// Draining an unregistered container waits for its target to deliver its
// queue; a stalled target is given the timeout, and what is left is
// counted as dropped (no spool) or spooled.
func TestUnregisterDrain(t *testing.T) {
	for _, stalled := range []bool{false, true} {
		w := newWorld(t, false)
		w.stall["a"] = stalled
		run, err := w.cs.Register(parse(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x}\nqueue: {spool: 1MiB}\n"), deliver.RegisterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			run.Queue().Push(fmt.Appendf(nil, "type=USER msg=audit(1.000:%d): x", i))
		}
		start := time.Now()
		res, err := w.cs.Unregister(context.Background(), "a", deliver.UnregisterOptions{Drain: true, Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		if stalled {
			if res.Drained || res.Spooled != 100 || took < 250*time.Millisecond {
				t.Errorf("stalled: %+v after %v, want 100 spooled after the timeout", res, took)
			}
		}
		f := w.targets["a"][0]
		f.mu.Lock()
		if !stalled && (!res.Drained || len(f.got) != 100 || took > 250*time.Millisecond) {
			t.Errorf("delivering: %+v, %d delivered, after %v; want 100 delivered at once", res, len(f.got), took)
		}
		if !f.closed {
			t.Error("the target was not closed")
		}
		f.mu.Unlock()
		if w.attach["a"] != 0 {
			t.Errorf("attachments left: %d", w.attach["a"])
		}
	}
}

// Concurrent registrations, replacements, listings and removals keep the
// books straight (run with -race): every target made is closed once, every
// attachment detached, no kernel rule left.
func TestConcurrentLifecycle(t *testing.T) {
	w := newWorld(t, true)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				name := fmt.Sprintf("c%d", (g+i)%3)
				src := fmt.Sprintf("name: %s\nid: %d\ndeliver: {file: /x}\nkernel_rules: ['-a always,exit -S execve -k x']\n", name, 10+(g+i)%3)
				w.cs.Register(parse(t, src), deliver.RegisterOptions{Replace: true})
				w.cs.Each(func(c *registry.Container, t *deliver.Container) {
					if t != nil {
						t.Target().Status()
					}
				})
				if i%3 == 0 {
					w.cs.Unregister(context.Background(), name, deliver.UnregisterOptions{Drain: i%2 == 0, Timeout: 10 * time.Millisecond})
				}
			}
		}()
	}
	wg.Wait()
	w.cs.StopAll(0)
	if n := w.kern.count(); n != 0 {
		t.Errorf("%d kernel rules left", n)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, n := range w.attach {
		if n != 0 {
			t.Errorf("%s: %d attachments left", name, n)
		}
	}
	for name, ts := range w.targets {
		for i, f := range ts {
			f.mu.Lock()
			if !f.closed {
				t.Errorf("%s: target %d not closed", name, i)
			}
			f.mu.Unlock()
		}
	}
}
