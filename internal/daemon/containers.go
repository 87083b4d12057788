package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/auditrule"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// featureContID is the audit feature bit of the container-ID patches.
const featureContID = 0x80

// containers runs the registered containers: their queues, their delivery
// and their container-scoped kernel rules, and keeps the router's view of
// them current.
type containers struct {
	d      *Daemon
	log    hclog.Logger
	router *router.Router
	store  *registry.Store
	contid bool // the kernel has the container-ID patches

	mu   sync.Mutex // guards tree and live
	tree *registry.Tree
	live map[string]*tenant
}

// tenant is one running container.
type tenant struct {
	c       *registry.Container
	q       *queue.Queue
	tn      *router.Container
	cancel  context.CancelFunc
	done    chan struct{}
	sender  *remote.Sender  // remote targets
	file    *hostlog.Writer // file targets
	kwire   [][]byte        // kernel rules loaded for it, contid included
	lat     *latencyReader  // the queue as delivery drains it
	ln      net.Listener    // its scoped control socket, nil for none
	errMu   sync.Mutex      // guards lastErr
	lastErr string
}

func (cs *containers) load(cfg []*registry.Container) error {
	stored, err := cs.store.Load()
	if err != nil {
		return fmt.Errorf("loading registered containers: %w", err)
	}
	all := append(cfg, stored...)
	tree, err := registry.Build(all)
	if err != nil {
		return fmt.Errorf("loading containers: %w", err)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.tree = tree
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

// publish hands the router the current tenants. Called with mu held.
func (cs *containers) publish() {
	m := make(map[string]*router.Container, len(cs.live))
	for name, t := range cs.live {
		m[name] = t.tn
	}
	cs.router.Set(cs.tree, m)
}

// start opens a container's queue, starts its delivery and loads its
// kernel rules.
func (cs *containers) start(c *registry.Container) (*tenant, error) {
	if len(c.KernelRules) > 0 && !cs.contid {
		return nil, fmt.Errorf("%s: container %q has kernel_rules, but this kernel lacks the container-ID patches (audit feature bit 0x80): its rules cannot be scoped to it, so none is loaded", c.File, c.Name)
	}
	q, err := cs.openQueue(c)
	if err != nil {
		return nil, fmt.Errorf("opening queue of %q: %w", c.Name, err)
	}
	t := &tenant{c: c, q: q, tn: router.NewContainer(c, q), done: make(chan struct{}), lat: newLatencyReader(q)}
	if c.Socket != "" {
		// Made here, so that a socket that cannot be made refuses the
		// registration; served by startScoped.
		if t.ln, err = control.ListenStrict(c.Socket); err != nil {
			q.Close()
			return nil, fmt.Errorf("the scoped control socket of %q: %w", c.Name, err)
		}
	}
	if err := cs.loadKernelRules(t); err != nil {
		t.closeSocket()
		q.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	if err := cs.deliver(ctx, t); err != nil {
		cancel()
		cs.unloadKernelRules(t)
		t.closeSocket()
		q.Close()
		return nil, err
	}
	return t, nil
}

// openQueue opens c's queue. Its spool lives in STATE_DIR/queues/NAME,
// made and opened through a descriptor of STATE_DIR/queues with no symlink
// followed; NAME is a valid container name (never "." or "..").
func (cs *containers) openQueue(c *registry.Container) (*queue.Queue, error) {
	log := cs.log.Named(c.Name)
	if c.Queue.Spool == 0 {
		return queue.OpenDir(nil, c.Queue, log)
	}
	if err := registry.CheckName(c.Name); err != nil {
		return nil, err
	}
	root := filepath.Join(cs.d.cfg().StateDir, "queues")
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

func (cs *containers) loadKernelRules(t *tenant) error {
	for _, r := range t.c.KernelRules {
		wire, err := auditrule.AppendContID(r.Wire, t.c.ID, false)
		if err == nil {
			cs.d.ctlMu.Lock()
			err = cs.d.ctl.AddRule(wire)
			cs.d.ctlMu.Unlock()
		}
		if err != nil {
			cs.unloadKernelRules(t)
			return fmt.Errorf("%s:%d: loading kernel rule %q for container %q: %w", t.c.File, r.Line, r.Text, t.c.Name, err)
		}
		t.kwire = append(t.kwire, wire)
	}
	return nil
}

func (cs *containers) unloadKernelRules(t *tenant) {
	cs.d.ctlMu.Lock()
	defer cs.d.ctlMu.Unlock()
	for _, w := range t.kwire {
		if err := cs.d.ctl.DeleteRule(w); err != nil {
			cs.log.Warn("removing a container's kernel rule", "name", t.c.Name, "error", err)
		}
	}
	t.kwire = nil
}

// deliver starts the goroutine that drains t's queue into its target.
func (cs *containers) deliver(ctx context.Context, t *tenant) error {
	log := cs.log.Named(t.c.Name)
	if t.c.Deliver.File != "" {
		opt := cs.d.cfg().Log
		opt.Path, opt.Node, opt.Logger = t.c.Deliver.File, "", log
		// Confined beneath its area (deliver.beneath), or else its own
		// directory, opened once as the admin named it and held: no
		// later symlink there is followed (hostlog.Options).
		opt.Beneath, opt.HoldDir = t.c.Deliver.Beneath, true
		// A tenant's full volume must not stop anything else: failed
		// writes are retried from the queue instead.
		opt.DiskFullAction = hostlog.Action{Kind: hostlog.ActionIgnore}
		opt.DiskErrorAction = hostlog.Action{Kind: hostlog.ActionIgnore}
		opt.SpaceLeftAction = hostlog.Action{Kind: hostlog.ActionIgnore}
		opt.AdminSpaceLeftAction = hostlog.Action{Kind: hostlog.ActionIgnore}
		opt.Mode = 0o640
		w, err := hostlog.Open(opt)
		if err != nil {
			return fmt.Errorf("opening the file target of %q: %w", t.c.Name, err)
		}
		t.file = w
		go func() {
			defer close(t.done)
			deliverFile(ctx, t, log)
			w.Close()
		}()
		return nil
	}
	t.sender = &remote.Sender{Addr: t.c.Deliver.Remote, Queue: t.lat, Logger: log}
	closeNS := func() error { return nil }
	if t.c.Deliver.NetNS != "" {
		dial, closer, err := netnsDialer(t.c.Deliver.NetNS)
		if err != nil {
			return fmt.Errorf("the remote target of %q: %w", t.c.Name, err)
		}
		t.sender.Dial, closeNS = dial, closer
	}
	go func() {
		defer close(t.done)
		defer closeNS()
		if err := t.sender.Run(ctx); err != nil {
			log.Error("delivery stopped", "error", err)
		}
	}()
	return nil
}

// deliverFile writes t's copies to its file target, committing what was
// written; a failed write is retried (the queue keeps the copies).
func deliverFile(ctx context.Context, t *tenant, log hclog.Logger) {
	var notice []byte
	for {
		items, err := t.lat.Read(ctx, 512)
		if err != nil {
			return
		}
		var werr error
		for _, it := range items {
			if it.Lost > 0 {
				notice = remote.LostNotice(notice[:0], it.Lost, it.Data, time.Now())
				werr = errors.Join(werr, t.file.WriteLine(notice))
			}
			werr = errors.Join(werr, t.file.WriteLine(it.Data))
		}
		if werr = errors.Join(werr, t.file.Flush()); werr != nil {
			t.setErr(werr)
			log.Warn("writing copies to the file target; will retry", "error", werr)
			t.lat.Rewind()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		t.lat.Commit(items[len(items)-1].Seq)
	}
}

// closeSocket closes t's scoped control socket (removing its file), if it
// has one; a Server serving it then stops accepting.
func (t *tenant) closeSocket() {
	if t.ln != nil {
		t.ln.Close()
	}
}

func (t *tenant) setErr(err error) {
	t.errMu.Lock()
	t.lastErr = err.Error()
	t.errMu.Unlock()
}

// stop ends t's delivery. With drain, it first waits (up to wait) until its
// queue is delivered. Its queue is closed: what is left stays in its spool.
func (cs *containers) stop(t *tenant, drain bool, wait time.Duration) {
	if drain {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			if st := t.q.Stats(); st.MemoryItems+st.SpoolItems == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	t.cancel()
	<-t.done
	t.closeSocket()
	if err := t.q.Close(); err != nil {
		cs.log.Warn("closing queue", "name", t.c.Name, "error", err)
	}
	cs.unloadKernelRules(t)
}

// stopAll stops every container at shutdown, giving queues a moment to
// drain.
func (cs *containers) stopAll() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var wg sync.WaitGroup
	for _, t := range cs.live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs.stop(t, true, 2*time.Second)
		}()
	}
	wg.Wait()
	cs.live = map[string]*tenant{}
}
