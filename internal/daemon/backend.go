package daemon

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// backend is the daemon's side of the control API.
type backend struct {
	d *Daemon
}

var _ control.Backend = backend{}

func (b backend) Tree() *registry.Tree {
	cs := b.d.conts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.tree
}

// Register adds (or replaces) a container while records flow.
func (b backend) Register(ctx context.Context, c *registry.Container, o control.RegisterOptions) (control.ContainerInfo, error) {
	cs := b.d.conts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	// A scope is checked against the tree as it is, before anything else.
	if o.Guard != nil {
		if err := o.Guard(cs.tree); err != nil {
			return control.ContainerInfo{}, err
		}
	}
	old := cs.live[c.Name]
	if cs.tree.ByName(c.Name) != nil && !o.Replace {
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w", c.Name, control.ErrExists)
	}
	tree, err := cs.tree.With(c)
	if err != nil {
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w: %w", c.Name, control.ErrInvalid, err)
	}
	if err := b.d.checkRuleLimits(tree, c.Name, nil); err != nil {
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w: %w", c.Name, control.ErrInvalid, err)
	}
	if old != nil {
		// Its queue and spool are kept: the new registration reopens them.
		cs.stop(old, false, 0)
		delete(cs.live, c.Name)
	}
	t, err := cs.start(c)
	if err != nil {
		if old != nil {
			if back, rerr := cs.start(old.c); rerr == nil {
				cs.live[c.Name] = back
				b.d.startScoped(back) // its socket was made anew
			}
		}
		return control.ContainerInfo{}, fmt.Errorf("registering %q: %w: %w", c.Name, control.ErrInvalid, err)
	}
	if err := cs.store.Save(c); err != nil {
		b.d.log.Warn("the registration will not survive a restart", "name", c.Name, "error", err)
	}
	cs.tree = tree
	cs.live[c.Name] = t
	cs.publish()
	if old != nil {
		// The replaced registration's socket goes with it, even when
		// the new one names none or another.
		b.d.stopScoped(c.Name)
	}
	b.d.startScoped(t)
	b.d.log.Info("registered container", "name", c.Name, "target", c.Deliver.String())
	return b.info(t), nil
}

// Unregister stops copying to a container and disposes of its queue.
func (b backend) Unregister(ctx context.Context, name string, o control.UnregisterOptions) (control.UnregisterResult, error) {
	cs := b.d.conts
	cs.mu.Lock()
	if o.Guard != nil {
		if err := o.Guard(cs.tree); err != nil {
			cs.mu.Unlock()
			return control.UnregisterResult{}, err
		}
	}
	t := cs.live[name]
	c := cs.tree.ByName(name)
	if c == nil {
		cs.mu.Unlock()
		return control.UnregisterResult{}, fmt.Errorf("unregistering %q: %w", name, control.ErrNotFound)
	}
	if o.Owner != "" && c.Owner != o.Owner {
		// A same-named container registered by someone else: the
		// drain below re-checks that cs.live[name] is still this one.
		cs.mu.Unlock()
		return control.UnregisterResult{}, fmt.Errorf("unregistering %q: %w: it was not registered by %s", name, control.ErrConflict, o.Owner)
	}
	tree, err := cs.tree.Without(name)
	if err != nil {
		cs.mu.Unlock()
		return control.UnregisterResult{}, fmt.Errorf("unregistering: %w: %w", control.ErrConflict, err)
	}
	if o.Mode == control.ModeDrain {
		// Events that closed just before this call are still in the
		// router (stock kernels hold them to attribute them): let them
		// through before the container leaves the router's table.
		cs.mu.Unlock()
		time.Sleep(b.d.routeLag())
		cs.mu.Lock()
		if cs.live[name] != t {
			cs.mu.Unlock()
			return control.UnregisterResult{}, fmt.Errorf("unregistering %q: changed meanwhile: %w", name, control.ErrConflict)
		}
		if o.Guard != nil {
			if err := o.Guard(cs.tree); err != nil {
				cs.mu.Unlock()
				return control.UnregisterResult{}, err
			}
		}
		if tree, err = cs.tree.Without(name); err != nil {
			cs.mu.Unlock()
			return control.UnregisterResult{}, fmt.Errorf("unregistering: %w: %w", control.ErrConflict, err)
		}
	}
	cs.tree = tree
	delete(cs.live, name)
	cs.publish() // no more copies for it from here on
	cs.store.Remove(name)
	cs.mu.Unlock()
	res := control.UnregisterResult{Name: name, Mode: o.Mode}
	if t == nil {
		return res, nil
	}
	b.d.stopScoped(name)
	before := t.q.Stats()
	if o.Mode == control.ModeDrain {
		deadline := time.Now().Add(o.Timeout)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if st := t.q.Stats(); st.MemoryItems+st.SpoolItems == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	after := t.q.Stats()
	left := uint64(after.MemoryItems + after.SpoolItems)
	res.Drained = left == 0
	res.Delivered = after.Committed - before.Committed
	cs.stop(t, false, 0)
	if t.c.Queue.Spool > 0 {
		res.Spooled = left
	} else {
		res.Dropped = left
	}
	b.d.log.Info("unregistered container", "name", name, "mode", o.Mode, "delivered", res.Delivered, "left", left)
	return res, nil
}

// PushRules swaps a container's rules atomically and persists them.
func (b backend) PushRules(ctx context.Context, name string, u control.RulesUpdate) (control.ContainerInfo, error) {
	cs := b.d.conts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if u.Guard != nil {
		if err := u.Guard(cs.tree); err != nil {
			return control.ContainerInfo{}, err
		}
	}
	t := cs.live[name]
	if t == nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules to %q: %w", name, control.ErrNotFound)
	}
	if err := b.d.checkRuleLimits(cs.tree, name, u.Rules); err != nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules to %q: %w: %w", name, control.ErrInvalid, err)
	}
	// Saved first, then applied: a push that cannot be saved leaves the
	// running rules as they are.
	c, err := t.c.WithRules(u.Source, u.File)
	if err != nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules to %q: %w: %w", name, control.ErrInvalid, err)
	}
	tree, err := cs.tree.With(c)
	if err != nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules to %q: %w: %w", name, control.ErrInvalid, err)
	}
	if err := cs.store.Save(c); err != nil {
		return control.ContainerInfo{}, fmt.Errorf("pushing rules to %q: %w", name, err)
	}
	t.tn.SetRules(u.Rules)
	cs.tree, t.c = tree, c
	b.d.log.Info("pushed rules", "name", name, "rules", u.Rules.Len(), "file", u.File)
	return b.info(t), nil
}

func (b backend) Containers(ctx context.Context) ([]control.ContainerInfo, error) {
	cs := b.d.conts
	cs.mu.Lock()
	defer cs.mu.Unlock()
	var out []control.ContainerInfo
	for _, c := range cs.tree.Containers() {
		if t := cs.live[c.Name]; t != nil {
			out = append(out, b.info(t))
		} else {
			info := control.Describe(c)
			info.LastError = "not running (see the daemon's log)"
			out = append(out, info)
		}
	}
	return out, nil
}

// info describes a running container with its queue and delivery figures.
func (b backend) info(t *tenant) control.ContainerInfo {
	info := control.Describe(t.c)
	if t.c.HasID() {
		info.Namespaces = b.d.namespaces.of(t.c.ID)
	}
	if p := t.tn.Rules(); p != nil {
		info.Rules = p.Len()
	}
	q := t.q.Stats()
	rs := t.tn.Stats()
	info.Queued = uint64(q.MemoryItems + q.SpoolItems)
	info.QueuedBytes = uint64(q.MemoryBytes + q.SpoolBytes)
	info.SpoolBytes = uint64(q.SpoolBytes)
	info.PeakQueuedBytes = uint64(q.PeakMemoryBytes)
	info.Routed, info.Filtered = rs.Records, rs.Filtered
	info.Delivered = q.Committed
	info.Dropped = q.Dropped.Total()
	info.Drops = map[string]uint64{"full": q.Dropped.Full, "too-large": q.Dropped.TooLarge, "spool-error": q.Dropped.SpoolError,
		"corrupt": q.Dropped.Corrupt, "crash": q.Dropped.Crash, "closed": q.Dropped.Closed}
	switch {
	case t.sender != nil:
		s := t.sender.Status()
		info.Connected, info.Acked = s.Connected, s.Acked
		info.InFlight, info.Retried = s.InFlight, s.Retried
		info.ReceiverBound = s.WaitingOnReceiver && info.Queued > 0
		info.ReceiverWaitSeconds = s.ReceiverWait.Seconds()
		info.LastError, info.LastErrorTime = s.LastError, s.LastErrorTime
	default:
		info.Connected, info.Acked = true, q.Committed
		t.errMu.Lock()
		info.LastError = t.lastErr
		t.errMu.Unlock()
	}
	return info
}

func (b backend) Status(ctx context.Context) (control.Status, error) {
	st := control.Status{PID: os.Getpid(), Started: b.d.started}
	if b.d.ctl != nil {
		b.d.ctlMu.Lock()
		ks, err := b.d.ctl.Status()
		b.d.ctlMu.Unlock()
		if err != nil {
			return st, fmt.Errorf("reading the kernel's audit status: %w", err)
		}
		attr := control.AttributionContid
		if b.d.tracker != nil || b.d.router == nil {
			attr = control.AttributionCgroup
		}
		st.Kernel = &control.KernelStatus{Enabled: ks.Enabled, PID: ks.PID, Failure: ks.Failure, RateLimit: ks.RateLimit,
			BacklogLimit: ks.BacklogLimit, BacklogWaitTime: ks.BacklogWaitTime, Backlog: ks.Backlog, Lost: uint64(ks.Lost),
			Attribution: attr, Checked: time.Now()}
		ds := b.d.Stats()
		st.Kernel.Received, st.Kernel.Foreign = ds.Records, ds.Foreign
	}
	hs := b.d.hlog.Stats()
	st.HostLog = &control.HostLogStatus{Path: b.d.hlog.Path(), Records: hs.Records, Bytes: hs.Bytes, Rotations: hs.Rotations,
		Size: hs.Size, Suspended: hs.Suspended, Dropped: hs.DroppedSuspend + hs.DroppedError}
	if b.d.router != nil {
		rs := b.d.router.Stats()
		st.Router = &control.RouterStatus{Records: rs.Records, Events: rs.Events, Partial: rs.Partial, Unattributed: rs.Unattributed,
			Overflow: rs.Overflow, Malformed: rs.Malformed, BadChain: rs.BadChain}
	}
	st.Plugins = b.d.pluginStatus()
	var err error
	st.Containers, err = b.Containers(ctx)
	return st, err
}
