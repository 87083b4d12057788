package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// backend is the daemon's side of the control API.
type backend struct {
	d *Daemon
}

var _ control.Backend = backend{}

func (b backend) Tree() *registry.Tree { return b.d.conts.Tree() }

// Register adds (or replaces) a container while records flow.
func (b backend) Register(ctx context.Context, c *registry.Container, o control.RegisterOptions) (control.ContainerInfo, error) {
	t, err := b.d.conts.Register(c, deliver.RegisterOptions{Replace: o.Replace, Guard: o.Guard,
		Check: func(next *registry.Tree) error { return b.d.checkRuleLimits(next, c.Name, nil) }})
	if err != nil {
		return control.ContainerInfo{}, apiError(err)
	}
	b.d.log.Info("registered container", "name", c.Name, "target", c.Deliver.String())
	return b.info(t), nil
}

// Unregister stops copying to a container and disposes of its queue.
func (b backend) Unregister(ctx context.Context, name string, o control.UnregisterOptions) (control.UnregisterResult, error) {
	u, err := b.d.conts.Unregister(ctx, name, deliver.UnregisterOptions{Drain: o.Mode == control.ModeDrain, Timeout: o.Timeout,
		Owner: o.Owner, Guard: o.Guard})
	if err != nil {
		return control.UnregisterResult{}, apiError(err)
	}
	res := control.UnregisterResult{Name: name, Mode: o.Mode, Drained: u.Drained, Delivered: u.Delivered, Spooled: u.Spooled, Dropped: u.Dropped}
	b.d.log.Info("unregistered container", "name", name, "mode", o.Mode, "delivered", res.Delivered, "left", u.Spooled+u.Dropped)
	return res, nil
}

// PushRules swaps a container's rules atomically and persists them.
func (b backend) PushRules(ctx context.Context, name string, u control.RulesUpdate) (control.ContainerInfo, error) {
	check := func(cur *registry.Tree) error {
		if u.Guard != nil {
			if err := u.Guard(cur); err != nil {
				return err
			}
		}
		if cur.ByName(name) == nil {
			return fmt.Errorf("pushing rules to %q: %w", name, control.ErrNotFound)
		}
		if err := b.d.checkRuleLimits(cur, name, u.Rules); err != nil {
			return fmt.Errorf("pushing rules to %q: %w: %w", name, control.ErrInvalid, err)
		}
		return nil
	}
	// Saved first, then applied: a push that cannot be saved leaves the
	// running rules as they are.
	with := func(c *registry.Container) (*registry.Container, error) { return c.WithRules(u.Source, u.File) }
	t, err := b.d.conts.PushRules(name, u.Rules, with, check)
	if err != nil {
		return control.ContainerInfo{}, apiError(err)
	}
	b.d.log.Info("pushed rules", "name", name, "rules", u.Rules.Len(), "file", u.File)
	return b.info(t), nil
}

// apiError gives a refusal of the containers' lifecycle the control API's
// kind, keeping its message.
func apiError(err error) error {
	for _, k := range [][2]error{{deliver.ErrInvalid, control.ErrInvalid}, {deliver.ErrNotFound, control.ErrNotFound},
		{deliver.ErrExists, control.ErrExists}, {deliver.ErrConflict, control.ErrConflict}} {
		if errors.Is(err, k[0]) {
			return kindError{err, k[1]}
		}
	}
	return err
}

// kindError is err, matching kind too.
type kindError struct{ err, kind error }

func (e kindError) Error() string   { return e.err.Error() }
func (e kindError) Unwrap() []error { return []error{e.err, e.kind} }

func (b backend) Containers(ctx context.Context) ([]control.ContainerInfo, error) {
	var out []control.ContainerInfo
	b.d.conts.Each(func(c *registry.Container, t *deliver.Container) {
		if t != nil {
			out = append(out, b.info(t))
		} else {
			info := control.Describe(c)
			info.LastError = "not running (see the daemon's log)"
			out = append(out, info)
		}
	})
	return out, nil
}

// info describes a running container with its queue and delivery figures.
func (b backend) info(t *deliver.Container) control.ContainerInfo {
	c := t.Config()
	info := control.Describe(c)
	if c.HasID() {
		info.Namespaces = b.d.namespaces.of(c.ID)
	}
	if p := t.Routing().Rules(); p != nil {
		info.Rules = p.Len()
	}
	q := t.Queue().Stats()
	rs := t.Routing().Stats()
	info.Queued = uint64(q.MemoryItems + q.SpoolItems)
	info.QueuedBytes = uint64(q.MemoryBytes + q.SpoolBytes)
	info.SpoolBytes = uint64(q.SpoolBytes)
	info.PeakQueuedBytes = uint64(q.PeakMemoryBytes)
	info.Routed, info.Filtered = rs.Records, rs.Filtered
	info.Delivered = q.Committed
	info.Dropped = q.Dropped.Total()
	info.Drops = map[string]uint64{"full": q.Dropped.Full, "too-large": q.Dropped.TooLarge, "spool-error": q.Dropped.SpoolError,
		"corrupt": q.Dropped.Corrupt, "crash": q.Dropped.Crash, "closed": q.Dropped.Closed, "router-overflow": q.Dropped.RouterOverflow}
	s := t.Target().Status()
	info.Connected, info.Acked = s.Connected, s.Acked
	info.InFlight, info.Retried = s.InFlight, s.Retried
	info.ReceiverBound = s.WaitingOnReceiver && info.Queued > 0
	info.ReceiverWaitSeconds = s.ReceiverWait.Seconds()
	info.LastError, info.LastErrorTime = s.LastError, s.LastErrorTime
	return info
}

// DeliveryLatency implements control.LatencyBackend.
func (b backend) DeliveryLatency(ctx context.Context) ([]control.Latency, error) {
	var out []control.Latency
	b.d.conts.Each(func(c *registry.Container, t *deliver.Container) {
		if t == nil {
			return
		}
		h := t.Latency()
		l := control.Latency{Name: c.Name, Count: h.Count, Sum: h.Sum}
		for i, ub := range deliver.LatencyBounds {
			l.Buckets = append(l.Buckets, control.Bucket{UpperBound: ub, Count: h.Buckets[i]})
		}
		out = append(out, l)
	})
	return out, nil
}

var _ control.LatencyBackend = backend{}

func (b backend) Status(ctx context.Context) (control.Status, error) {
	st := control.Status{PID: os.Getpid(), Started: b.d.started}
	if b.d.ctl != nil {
		ks, err := b.d.ctl.Status()
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
	st.Tracker = b.d.trackerStatus()
	st.Plugins = b.d.pluginStatus()
	st.Export = b.d.export.status()
	st.Consume = b.d.consumeStatus()
	var err error
	st.Containers, err = b.Containers(ctx)
	return st, err
}

// trackerStatus is the process-events tracker's figures, nil when none
// runs. At most one does: the cgroup one on a stock kernel, the contid
// one on a patched kernel.
func (d *Daemon) trackerStatus() *control.TrackerStatus {
	tr, attr := d.tracker, control.AttributionCgroup
	if tr == nil {
		tr, attr = d.idTracker, control.AttributionContid
	}
	if tr == nil {
		return nil
	}
	s := tr.Stats()
	return &control.TrackerStatus{Attribution: attr, Watching: s.Watching, Events: s.Events, Overruns: s.Overruns,
		ExecMissed: s.ExecMissed, Moves: s.Moves, Gone: s.Gone,
		Hits: s.Hits, ParentHits: s.ParentHits, Ambiguous: s.Ambiguous, Misses: s.Misses,
		Processes: s.Entries, Dropped: s.Dropped, Idle: s.Idle, ProcReads: s.Reads}
}
