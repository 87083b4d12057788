package deliver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
	"github.com/auditd-ns/auditd-ns/pkg/source"
)

// KernelRules loads and removes kernel audit rules in the kernel's wire
// format. *source.Control implements it. It must be safe for concurrent
// use.
type KernelRules interface {
	AddRule(wire []byte) error
	DeleteRule(wire []byte) error
}

// Settings are what a container takes from the running configuration as
// it starts. Options.Settings is asked at each start, so that a reload
// applies to the containers started after it.
type Settings struct {
	// StateDir holds the spools, in StateDir/queues/NAME.
	StateDir string
	// Log is the host log's options, the base of a file target's.
	Log hostlog.Options
}

// Options configures Containers.
type Options struct {
	// Router gets the running containers.
	Router *router.Router
	// Store persists registrations; nil persists nothing.
	Store *registry.Store
	// Kernel loads container-scoped kernel rules. Nil on a kernel without
	// the container-ID patches: a container with kernel_rules is then
	// refused, with an error wrapping source.ErrNotSupported.
	Kernel KernelRules
	// Settings returns the running settings; nil means none (no spool
	// directory, default file options).
	Settings func() Settings
	// Logger is named after each container for its messages.
	Logger hclog.Logger
	// NewTarget makes a container's target; nil means NewTarget.
	NewTarget func(c *registry.Container, s Settings, log hclog.Logger) (Target, error)
	// Attach, when set, is called as a container starts, before its
	// kernel rules and delivery: an error refuses the start. Detach undoes
	// it when the container stops, or when its start fails after Attach.
	// Both run with the Containers' lock held and must not call back into
	// it. The daemon attaches a container's scoped control socket here.
	Attach func(*Container) error
	Detach func(*Container)
}

// Containers runs the registered containers and keeps the router's table of them
// current. Its methods are safe for concurrent use.
type Containers struct {
	opt Options
	log hclog.Logger
	ctx context.Context // deliveries run under it (Load's)

	mu   sync.Mutex // guards tree and live
	tree *registry.Tree
	live map[string]*Container
	// config holds the files of the containers Load was given (the
	// daemon's containers_dir), by name: their registration is that file,
	// which Register does not write, so it refuses their names.
	config map[string]string
}

// Container is one running container: its queue, its entry in the router,
// its target and the kernel rules loaded for it.
type Container struct {
	c      *registry.Container
	q      *queue.Queue
	tn     *router.Container
	target Target
	lat    *latencyReader // the queue as the target drains it
	kwire  [][]byte       // kernel rules loaded for it, contid included
	cancel context.CancelFunc
	done   chan struct{}
}

// Config is the container's registration.
func (t *Container) Config() *registry.Container { return t.c }

// Queue is the container's queue.
func (t *Container) Queue() *queue.Queue { return t.q }

// Routing is the container's entry in the router (its rules, its
// figures).
func (t *Container) Routing() *router.Container { return t.tn }

// Target is where the container's copies go.
func (t *Container) Target() Target { return t.target }

// Latency is the histogram of the container's delivery latencies.
func (t *Container) Latency() Latency { return t.lat.histogram() }

// New returns Containers with none running, and an empty tree.
func New(opt Options) *Containers {
	if opt.Logger == nil {
		opt.Logger = hclog.NewNullLogger()
	}
	if opt.NewTarget == nil {
		opt.NewTarget = NewTarget
	}
	if opt.Settings == nil {
		opt.Settings = func() Settings { return Settings{} }
	}
	tree, _ := registry.Build(nil)
	return &Containers{opt: opt, log: opt.Logger, ctx: context.Background(), tree: tree, live: map[string]*Container{}}
}

// NewTarget makes the target c.Deliver names: a file (FileOptions from
// s.Log), a remote peer, or a JetStream subject.
func NewTarget(c *registry.Container, s Settings, log hclog.Logger) (Target, error) {
	if c.Deliver.File != "" {
		opt := FileOptions(s.Log, c.Deliver.File, c.Deliver.Beneath, log)
		// A user-namespaced container's root reads its file.
		opt.UID, opt.GID, opt.Chown = c.Deliver.FileOwnerIDs()
		f, err := OpenFile(opt)
		if err != nil {
			return nil, fmt.Errorf("opening the file target of %q: %w", c.Name, err)
		}
		return f, nil
	}
	if c.Deliver.JetStream != nil {
		return NewJetStream(c.Name, c.Deliver.JetStream, log)
	}
	r, err := NewRemote(c.Deliver.Remote, c.Deliver.NetNS, log)
	if err != nil {
		return nil, fmt.Errorf("the remote target of %q: %w", c.Name, err)
	}
	return r, nil
}

// Load starts the containers of cfg and those the store kept, and
// publishes them to the router. Deliveries run under ctx until they are
// stopped (StopAll at shutdown). A container that cannot start is logged
// and left out of the running ones (it stays in the tree); an inconsistent
// tree is an error.
func (cs *Containers) Load(ctx context.Context, cfg []*registry.Container) error {
	var stored []*registry.Container
	if cs.opt.Store != nil {
		var err error
		if stored, err = cs.opt.Store.Load(); err != nil {
			return fmt.Errorf("loading registered containers: %w", err)
		}
	}
	tree, err := registry.Build(append(cfg, stored...))
	if err != nil {
		return fmt.Errorf("loading containers: %w", err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.ctx = ctx
	cs.tree = tree
	cs.config = map[string]string{}
	for _, c := range cfg {
		cs.config[c.Name] = c.File
	}
	for _, c := range tree.Containers() {
		t, err := cs.start(c)
		if err != nil {
			cs.log.Error("starting container", "name", c.Name, "error", err)
			continue
		}
		cs.live[c.Name] = t
	}
	cs.publish()
	return nil
}

// Tree returns the registered containers as they are now.
func (cs *Containers) Tree() *registry.Tree {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.tree
}

// Len returns how many containers run.
func (cs *Containers) Len() int {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.live)
}

// Get returns the running container called name, or nil.
func (cs *Containers) Get(name string) *Container {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.live[name]
}

// Each calls f for every registered container in the tree's order, with
// the running one (nil when it did not start), under the lock: f must not
// call back into cs.
func (cs *Containers) Each(f func(c *registry.Container, t *Container)) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.tree.Containers() {
		f(c, cs.live[c.Name])
	}
}

// publish hands the router the running containers. Called with mu held.
func (cs *Containers) publish() {
	if cs.opt.Router == nil {
		return
	}
	m := make(map[string]*router.Container, len(cs.live))
	for name, t := range cs.live {
		m[name] = t.tn
	}
	cs.opt.Router.Set(cs.tree, m)
}

// RegisterOptions are the checks of a registration, run under the lock.
type RegisterOptions struct {
	// Replace allows replacing a registration of the same name.
	Replace bool
	// Guard checks the tree as it is, before anything else; its error is
	// returned as is.
	Guard func(cur *registry.Tree) error
	// Check checks the tree as the registration would make it; its error
	// is returned wrapped in ErrInvalid.
	Check func(next *registry.Tree) error
}

// Register persists c, then starts it, replacing the running container of
// its name when o.Replace, and publishes it: a registration that cannot be
// saved is refused and changes nothing. A replaced container's queue and
// spool are kept: the new registration reopens them. When c cannot start,
// the replaced one is started again.
func (cs *Containers) Register(c *registry.Container, o RegisterOptions) (*Container, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if o.Guard != nil {
		if err := o.Guard(cs.tree); err != nil {
			return nil, err
		}
	}
	old := cs.live[c.Name]
	if cs.tree.ByName(c.Name) != nil && !o.Replace {
		return nil, fmt.Errorf("registering %q: %w", c.Name, ErrExists)
	}
	if file, ok := cs.config[c.Name]; ok {
		// Saved, it would clash with that file at the next start.
		return nil, fmt.Errorf("registering %q: %w: %s (the daemon's containers_dir) defines it: change that file instead", c.Name, ErrConflict, file)
	}
	tree, err := cs.tree.With(c)
	if err != nil {
		return nil, fmt.Errorf("registering %q: %w: %w", c.Name, ErrInvalid, err)
	}
	if o.Check != nil {
		if err := o.Check(tree); err != nil {
			return nil, fmt.Errorf("registering %q: %w: %w", c.Name, ErrInvalid, err)
		}
	}
	// Saved first, then started: a registration that cannot be saved
	// changes nothing that runs, and one that cannot start puts the saved
	// file back.
	restore := func() error { return nil }
	if cs.opt.Store != nil {
		if restore, err = cs.opt.Store.Snapshot(c.Name); err == nil {
			err = cs.opt.Store.Save(c)
		}
		if err != nil {
			return nil, fmt.Errorf("registering %q: %w", c.Name, err)
		}
	}
	if old != nil {
		cs.stop(old)
		delete(cs.live, c.Name)
	}
	t, err := cs.start(c)
	if err != nil {
		if rerr := restore(); rerr != nil {
			cs.log.Error("the store no longer matches the running containers", "name", c.Name, "error", rerr)
		}
		if old != nil {
			if back, rerr := cs.start(old.c); rerr == nil {
				cs.live[c.Name] = back
			}
		}
		return nil, fmt.Errorf("registering %q: %w: %w", c.Name, ErrInvalid, err)
	}
	cs.tree = tree
	cs.live[c.Name] = t
	cs.publish()
	return t, nil
}

// UnregisterOptions say how a container goes.
type UnregisterOptions struct {
	// Drain waits, up to Timeout, for its queue to be delivered; without
	// it, what is queued stays in its spool (or is dropped without one).
	Drain   bool
	Timeout time.Duration
	// Owner, when set, must be the container's owner (ErrConflict).
	Owner string
	// Guard checks the tree as it is, before anything else; its error is
	// returned as is.
	Guard func(cur *registry.Tree) error
}

// Unregistered is what became of an unregistered container's copies.
type Unregistered struct {
	Drained   bool   // its queue was empty when it stopped
	Delivered uint64 // copies delivered while it was drained
	Spooled   uint64 // copies left in its spool
	Dropped   uint64 // copies dropped (no spool)
}

// Unregister stops copying to the container called name, stops it and
// disposes of its queue. With o.Drain, the events the router holds that
// closed before the call are routed to it first (router.Sync), and its
// queue is delivered, up to o.Timeout or until ctx ends.
func (cs *Containers) Unregister(ctx context.Context, name string, o UnregisterOptions) (Unregistered, error) {
	cs.mu.Lock()
	t, tree, err := cs.removable(name, o)
	if err != nil {
		cs.mu.Unlock()
		return Unregistered{}, err
	}
	if o.Drain && cs.opt.Router != nil {
		// Events that closed just before this call are still in the
		// router (stock kernels hold them to attribute them): let them
		// through before the container leaves the router's table.
		cs.mu.Unlock()
		if err := cs.opt.Router.Sync(ctx); err != nil {
			return Unregistered{}, fmt.Errorf("unregistering %q: %w", name, err)
		}
		cs.mu.Lock()
		if cs.live[name] != t {
			cs.mu.Unlock()
			return Unregistered{}, fmt.Errorf("unregistering %q: changed meanwhile: %w", name, ErrConflict)
		}
		if _, tree, err = cs.removable(name, o); err != nil {
			cs.mu.Unlock()
			return Unregistered{}, err
		}
	}
	// Forgotten first, then stopped: an unregistration that cannot be
	// saved leaves the container running.
	if cs.opt.Store != nil {
		if err := cs.opt.Store.Remove(name); err != nil {
			cs.mu.Unlock()
			return Unregistered{}, fmt.Errorf("unregistering %q: %w", name, err)
		}
	}
	cs.tree = tree
	delete(cs.live, name)
	cs.publish() // no more copies for it from here on
	if t != nil && cs.opt.Detach != nil {
		cs.opt.Detach(t)
	}
	cs.mu.Unlock()
	var res Unregistered
	if t == nil {
		return res, nil
	}
	before := t.q.Stats()
	if o.Drain {
		wctx, cancel := context.WithTimeout(ctx, o.Timeout)
		t.q.WaitEmpty(wctx)
		cancel()
	}
	after := t.q.Stats()
	left := uint64(after.MemoryItems + after.SpoolItems)
	res.Drained = left == 0
	res.Delivered = after.Committed - before.Committed
	cs.stopDetached(t)
	if t.c.Queue.Spool > 0 {
		res.Spooled = left
	} else {
		res.Dropped = left
	}
	return res, nil
}

// removable checks that name may go, and returns its running container
// (nil if it did not start) and the tree without it. Called with mu held.
func (cs *Containers) removable(name string, o UnregisterOptions) (*Container, *registry.Tree, error) {
	if o.Guard != nil {
		if err := o.Guard(cs.tree); err != nil {
			return nil, nil, err
		}
	}
	c := cs.tree.ByName(name)
	if c == nil {
		return nil, nil, fmt.Errorf("unregistering %q: %w", name, ErrNotFound)
	}
	if o.Owner != "" && c.Owner != o.Owner {
		return nil, nil, fmt.Errorf("unregistering %q: %w: it was not registered by %s", name, ErrConflict, o.Owner)
	}
	tree, err := cs.tree.Without(name)
	if err != nil {
		return nil, nil, fmt.Errorf("unregistering: %w: %w", ErrConflict, err)
	}
	return cs.live[name], tree, nil
}

// PushRules gives the running container called name the rules prog, and
// records them in its registration: withRules returns the registration
// with the new rules. The registration is saved first, then the rules
// applied at once: a push that cannot be saved leaves the running rules as
// saved. check runs first, under the lock, on the tree as it is; its error
// is returned as is.
func (cs *Containers) PushRules(name string, prog *rules.Program, withRules func(*registry.Container) (*registry.Container, error), check func(cur *registry.Tree) error) (*Container, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if check != nil {
		if err := check(cs.tree); err != nil {
			return nil, err
		}
	}
	t := cs.live[name]
	if t == nil {
		return nil, fmt.Errorf("pushing rules to %q: %w", name, ErrNotFound)
	}
	c, err := withRules(t.c)
	if err != nil {
		return nil, fmt.Errorf("pushing rules to %q: %w: %w", name, ErrInvalid, err)
	}
	tree, err := cs.tree.With(c)
	if err != nil {
		return nil, fmt.Errorf("pushing rules to %q: %w: %w", name, ErrInvalid, err)
	}
	if cs.opt.Store != nil {
		if err := cs.opt.Store.Save(c); err != nil {
			return nil, fmt.Errorf("pushing rules to %q: %w", name, err)
		}
	}
	t.tn.SetRules(prog)
	cs.tree, t.c = tree, c
	return t, nil
}

// StopAll stops every container at shutdown, after giving each up to wait
// to deliver its queue (what is left stays in its spool).
func (cs *Containers) StopAll(wait time.Duration) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range cs.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(cs.ctx, wait)
			t.q.WaitEmpty(ctx)
			cancel()
		}()
	}
	wg.Wait()
	for _, t := range cs.live {
		cs.stop(t)
	}
	cs.live = map[string]*Container{}
	cs.publish()
}

// start opens c's queue, attaches it, loads its kernel rules and starts its
// delivery. Called with mu held.
func (cs *Containers) start(c *registry.Container) (*Container, error) {
	if len(c.KernelRules) > 0 && cs.opt.Kernel == nil {
		return nil, fmt.Errorf("%s: container %q has kernel_rules: %w: its rules cannot be scoped to it, so none is loaded", c.File, c.Name, source.ErrNotSupported)
	}
	s := cs.opt.Settings()
	log := cs.log.Named(c.Name)
	q, err := openQueue(c, s.StateDir, log)
	if err != nil {
		return nil, fmt.Errorf("opening queue of %q: %w", c.Name, err)
	}
	t := &Container{c: c, q: q, tn: router.NewContainer(c, q), done: make(chan struct{}), lat: newLatencyReader(q)}
	if cs.opt.Attach != nil {
		if err := cs.opt.Attach(t); err != nil {
			q.Close()
			return nil, err
		}
	}
	undo := func() {
		if cs.opt.Detach != nil {
			cs.opt.Detach(t)
		}
		q.Close()
	}
	if err := cs.loadKernelRules(t); err != nil {
		undo()
		return nil, err
	}
	if t.target, err = cs.opt.NewTarget(c, s, log); err != nil {
		cs.unloadKernelRules(t)
		undo()
		return nil, err
	}
	ctx, cancel := context.WithCancel(cs.ctx)
	t.cancel = cancel
	go func() {
		defer close(t.done)
		if err := t.target.Run(ctx, t.lat); err != nil {
			log.Error("delivery stopped", "error", err)
		}
	}()
	return t, nil
}

// stop ends t's delivery and detaches it. Called with mu held.
func (cs *Containers) stop(t *Container) {
	if cs.opt.Detach != nil {
		cs.opt.Detach(t)
	}
	cs.stopDetached(t)
}

// stopDetached ends t's delivery, closes its target and its queue (what is
// left stays in its spool) and removes its kernel rules.
func (cs *Containers) stopDetached(t *Container) {
	t.cancel()
	<-t.done
	if err := t.target.Close(); err != nil {
		cs.log.Warn("closing the target", "name", t.c.Name, "error", err)
	}
	if err := t.q.Close(); err != nil {
		cs.log.Warn("closing queue", "name", t.c.Name, "error", err)
	}
	cs.unloadKernelRules(t)
}

func (cs *Containers) loadKernelRules(t *Container) error {
	for _, r := range t.c.KernelRules {
		wire, err := auditrule.AppendContID(r.Wire, t.c.ID, false)
		if err == nil {
			err = cs.opt.Kernel.AddRule(wire)
		}
		if err != nil {
			cs.unloadKernelRules(t)
			return fmt.Errorf("%s:%d: loading kernel rule %q for container %q: %w", t.c.File, r.Line, r.Text, t.c.Name, err)
		}
		t.kwire = append(t.kwire, wire)
	}
	return nil
}

func (cs *Containers) unloadKernelRules(t *Container) {
	for _, w := range t.kwire {
		if err := cs.opt.Kernel.DeleteRule(w); err != nil {
			cs.log.Warn("removing a container's kernel rule", "name", t.c.Name, "error", err)
		}
	}
	t.kwire = nil
}

// openQueue opens c's queue. Its spool lives in stateDir/queues/NAME,
// made and opened through a descriptor of stateDir/queues with no symlink
// followed; NAME is a valid container name (never "." or "..").
func openQueue(c *registry.Container, stateDir string, log hclog.Logger) (*queue.Queue, error) {
	if c.Queue.Spool == 0 {
		return queue.OpenDir(nil, c.Queue, log)
	}
	if err := registry.CheckName(c.Name); err != nil {
		return nil, err
	}
	if stateDir == "" {
		return nil, errors.New("a spool needs a state directory")
	}
	root := filepath.Join(stateDir, "queues")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	rd, err := beneath.Open(root)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	d, err := rd.MkdirAll(c.Name, 0o700)
	if err != nil {
		return nil, err
	}
	q, err := queue.OpenDir(d, c.Queue, log)
	if err != nil {
		d.Close()
	}
	return q, err
}
