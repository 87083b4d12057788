package router

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// Attributor finds, on a stock kernel, which of the cgroup directories
// dirs (sorted deepest first) holds process pid, or its parent ppid when pid
// is unknown. It returns the index into dirs, or -1.
type Attributor func(pid, ppid uint32, dirs []string) int

// Options configures a Router.
type Options struct {
	// EventTimeout closes an event that saw no EOE (default 500ms).
	EventTimeout time.Duration
	// Backlog is how many records may wait for the router (default 65536).
	Backlog int
	// Attribute finds containers by cgroup on stock kernels; nil disables.
	Attribute Attributor
	// Node is the node= prefix for copies, "" for none.
	Node string
	// Delay holds closed events that long before routing them. With cgroup
	// attribution it gives the process-events tracker time to learn about
	// the processes an event names (default 0; the daemon uses 100ms on
	// stock kernels).
	Delay time.Duration
}

// Stats counts the router's work. Overflow counts records that reached the
// host log but were not routed because the router was behind; Malformed,
// records whose header could not be parsed (logged unchanged, never
// routed); BadChain, events whose CONTAINER_ID record could not be parsed.
type Stats struct {
	Records, Events, Partial, Unattributed uint64
	Overflow, Malformed, BadChain          uint64
}

// Router copies events to tenants. Submit is called by the receiving
// goroutine, Run by one goroutine of its own; Set may be called any time.
type Router struct {
	opt   Options
	in    chan input
	free  chan []byte
	table atomic.Pointer[table]
	asm   *Assembler

	// Used only by Run's goroutine.
	chain   []uint64
	tchain  []uint64  // trim's, apart from chain, which route is walking
	sent    []*Tenant // tenants an event was copied to (one copy each)
	scan    rules.Scan
	lines   []byte // the event's records as copy lines, each ending in \n
	ends    []int  // lines[ends[i-1]:ends[i]] is record i's (ends[-1] = 0)
	trimmed []byte // a tenant's rewritten CONTAINER_ID lines
	picks   []pick // the lines a tenant gets
	items   [][]byte
	data    []byte
	pidMemo map[uint32]*Tenant
	memoGen uint64

	records, events, partial, unattributed atomic.Uint64
	overflow, malformed, badChain          atomic.Uint64
}

type input struct {
	typ uint16
	buf []byte
}

// table is an immutable snapshot of the tenants.
type table struct {
	gen     uint64
	byID    map[uint64]*Tenant
	byName  map[string]*Tenant
	parent  map[*Tenant]*Tenant
	cgroups []*Tenant // deepest (longest path) first
	dirs    []string  // cgroups' directories, same order
}

// New returns a router with no tenants.
func New(opt Options) *Router {
	if opt.EventTimeout <= 0 {
		opt.EventTimeout = 500 * time.Millisecond
	}
	if opt.Backlog <= 0 {
		opt.Backlog = 65536
	}
	r := &Router{opt: opt, in: make(chan input, opt.Backlog), free: make(chan []byte, opt.Backlog),
		chain: make([]uint64, 0, 16), tchain: make([]uint64, 0, 16), lines: make([]byte, 0, 16<<10), data: make([]byte, 0, 16<<10),
		pidMemo: map[uint32]*Tenant{}}
	r.asm = NewAssembler(opt.EventTimeout, opt.Delay, r.route)
	r.table.Store(&table{byID: map[uint64]*Tenant{}, byName: map[string]*Tenant{}, parent: map[*Tenant]*Tenant{}})
	return r
}

// Set replaces the tenants: tree says how they nest; tenants holds one
// Tenant per container of tree, by name.
func (r *Router) Set(tree *registry.Tree, tenants map[string]*Tenant) {
	old := r.table.Load()
	t := &table{gen: old.gen + 1, byID: map[uint64]*Tenant{}, byName: map[string]*Tenant{}, parent: map[*Tenant]*Tenant{}}
	for _, c := range tree.Containers() {
		tn := tenants[c.Name]
		if tn == nil {
			continue
		}
		t.byName[c.Name] = tn
		if c.HasID() {
			t.byID[c.ID] = tn
		}
		if c.Cgroup != "" {
			t.cgroups = append(t.cgroups, tn)
		}
	}
	for _, tn := range t.byName {
		if p := t.byName[tn.C.Parent]; p != nil {
			t.parent[tn] = p
		}
	}
	sort.SliceStable(t.cgroups, func(i, j int) bool { return len(t.cgroups[i].C.Cgroup) > len(t.cgroups[j].C.Cgroup) })
	for _, tn := range t.cgroups {
		t.dirs = append(t.dirs, tn.C.Cgroup)
	}
	r.table.Store(t)
}

// Submit hands one record (already in the host log) to the router. It
// copies data and never blocks: when the router is behind, the record is
// counted in Overflow and not routed. With no container registered it does
// nothing.
func (r *Router) Submit(typ uint16, data []byte) {
	if len(r.table.Load().byName) == 0 {
		return // nobody to copy to: spare the host the routing work
	}
	var buf []byte
	select {
	case buf = <-r.free:
	default:
		buf = make([]byte, 0, max(512, len(data)))
	}
	buf = append(buf[:0], data...)
	select {
	case r.in <- input{typ, buf}:
	default:
		r.overflow.Add(1)
		r.release(buf)
	}
}

func (r *Router) release(b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	select {
	case r.free <- b:
	default:
	}
}

// Run routes until ctx ends, then routes what is still open.
func (r *Router) Run(ctx context.Context) error {
	period := r.opt.EventTimeout / 4
	if r.opt.Delay > 0 {
		period = min(period, r.opt.Delay/4)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var rec record.Record
	for {
		select {
		case <-ctx.Done():
			r.drain(&rec)
			return nil
		case in := <-r.in:
			r.add(&rec, in, time.Now())
		case now := <-tick.C:
			r.asm.Expire(now, r.release)
		}
	}
}

// drain routes every record already submitted, then closes open events.
func (r *Router) drain(rec *record.Record) {
	for {
		select {
		case in := <-r.in:
			r.add(rec, in, time.Now())
		default:
			r.asm.Flush(r.release)
			return
		}
	}
}

func (r *Router) add(rec *record.Record, in input, now time.Time) {
	r.records.Add(1)
	if err := record.Parse(rec, in.typ, in.buf); err != nil {
		r.malformed.Add(1)
		r.release(in.buf)
		return
	}
	r.asm.Add(rec, in.buf, now, r.release)
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{Records: r.records.Load(), Events: r.events.Load(), Partial: r.partial.Load(),
		Unattributed: r.unattributed.Load(), Overflow: r.overflow.Load(), Malformed: r.malformed.Load(), BadChain: r.badChain.Load()}
}

// Tenant returns the tenant called name, or nil.
func (r *Router) Tenant(name string) *Tenant { return r.table.Load().byName[name] }
