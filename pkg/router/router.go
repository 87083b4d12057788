package router

import (
	"bytes"
	"context"
	"encoding/binary"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
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

// Router copies events to tenants. Submit may be called from any
// goroutine, Run by one goroutine of its own; Set may be called any time.
type Router struct {
	opt   Options
	in    chan *batch
	table atomic.Pointer[table]
	asm   *assembler

	// Submit's side, on cache lines of its own: the receiving goroutine
	// writes them for every record, and Run's fields must not share a
	// line with them.
	_        cpu.CacheLinePad
	mu       sync.Mutex
	cur      *batch      // records gather here, handed over when full or fetched
	batches  chan *batch // emptied batches, for reuse
	waiting  atomic.Int64
	overflow atomic.Uint64
	_        cpu.CacheLinePad

	// Used only by Run's goroutine.
	fetched []*batch  // fetch's, reused
	cids    []cid     // the event's CONTAINER_ID records, parsed
	sent    []*Tenant // tenants an event was copied to (one copy each)
	scan    rules.Scan
	trimmed []byte // a tenant's rewritten CONTAINER_ID lines
	picks   []pick // the lines a tenant gets
	items   [][]byte
	data    []byte
	pidMemo map[uint32]*Tenant
	memoGen uint64
	memoAt  time.Time

	// Written by Run only.
	records, events, partial, unattributed atomic.Uint64
	malformed, badChain                    atomic.Uint64
}

// batch is records on their way to Run: each is its type (2 bytes), the
// length (4 bytes) of its copy line and the line, newline included, one
// after another in buf. Once Run has it, the records stay there, and the
// assembler's events point into it, until the last of them is routed.
type batch struct {
	buf  []byte
	n    int
	refs int // Run's goroutine only: records held, +1 while being added
}

// A batch is handed over when it holds this many records or bytes, so
// that the submitter pays a channel send (and Run a wake-up) once per batch,
// not once per record.
const (
	batchRecords = 512
	batchBytes   = 128 << 10
	// fetchEvery is how often Run takes a batch that is not full, so that
	// a record waits at most about this long before it is routed.
	fetchEvery = 10 * time.Millisecond
	// memoFor is how long the tenant found for a pid is remembered.
	memoFor = time.Second
	// maxBatches is how many emptied batches are kept for reuse: at
	// 160,000 records/s, the 100 ms routing delay holds about 40.
	maxBatches = 128
)

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
	r := &Router{opt: opt, in: make(chan *batch, max(opt.Backlog/batchRecords, 1)+1), batches: make(chan *batch, maxBatches),
		data: make([]byte, 0, 16<<10), pidMemo: map[uint32]*Tenant{}}
	r.asm = newAssembler(opt.EventTimeout, opt.Delay, r.route, r.release)
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

// Routing reports whether any container is registered: when none is,
// Submit and SubmitLines do nothing.
func (r *Router) Routing() bool { return len(r.table.Load().byName) > 0 }

// Submit hands one record (already in the host log) to the router. It
// copies data and never blocks: when more than Options.Backlog records wait
// for the router, the record is counted in Overflow and not routed. With no
// container registered it does nothing. Records are routed in the order
// they were submitted, within fetchEvery.
func (r *Router) Submit(typ uint16, data []byte) {
	if !r.Routing() {
		return // nobody to copy to: spare the host the routing work
	}
	r.mu.Lock()
	b := r.current()
	at := len(b.buf)
	b.buf = append(b.buf, 0, 0, 0, 0, 0, 0)
	b.buf = hostlog.AppendLine(b.buf, r.opt.Node, typ, data)
	r.added(b, typ, at)
	r.mu.Unlock()
}

// Lines gathers records' copy lines for SubmitLines, so that a receiver
// hands them to the router a group at a time. It belongs to one goroutine.
type Lines struct {
	node string
	buf  []byte // laid out as a batch's
	n    int
}

// NewLines returns an empty group for r.
func (r *Router) NewLines() *Lines { return &Lines{node: r.opt.Node} }

// Append adds one record and returns its copy line,
// hostlog.AppendLine(dst, Options.Node, typ, data), newline included, for
// the caller to use too (in the host log): it is valid until g is
// submitted.
func (g *Lines) Append(typ uint16, data []byte) []byte {
	at := len(g.buf)
	g.buf = binary.LittleEndian.AppendUint16(g.buf, typ)
	g.buf = append(g.buf, 0, 0, 0, 0)
	g.buf = hostlog.AppendLine(g.buf, g.node, typ, data)
	binary.LittleEndian.PutUint32(g.buf[at+2:], uint32(len(g.buf)-at-6))
	g.n++
	return g.buf[at+6:]
}

// Len returns the number of records in g.
func (g *Lines) Len() int { return g.n }

// SubmitLines hands g's records to the router, in order, as Submit does
// one, and empties g. It takes the lock once for the whole group.
func (r *Router) SubmitLines(g *Lines) {
	if g.n == 0 {
		return
	}
	if r.Routing() {
		r.mu.Lock()
		b := r.current()
		b.buf = append(b.buf, g.buf...)
		b.n += g.n
		r.full(b)
		r.mu.Unlock()
	}
	g.buf, g.n = g.buf[:0], 0
}

// current returns the batch records are added to; r.mu is held.
func (r *Router) current() *batch {
	if r.cur == nil {
		select {
		case r.cur = <-r.batches:
		default:
			r.cur = &batch{buf: make([]byte, 0, batchBytes+8<<10)}
		}
	}
	return r.cur
}

// added completes the record whose line was just appended to b after its
// header at b.buf[at:]; r.mu is held.
func (r *Router) added(b *batch, typ uint16, at int) {
	binary.LittleEndian.PutUint16(b.buf[at:], typ)
	binary.LittleEndian.PutUint32(b.buf[at+2:], uint32(len(b.buf)-at-6))
	b.n++
	r.full(b)
}

// full hands b over when it is full; r.mu is held.
func (r *Router) full(b *batch) {
	if b.n >= batchRecords || len(b.buf) >= batchBytes {
		r.cur = nil
		r.send(b)
	}
}

// send queues b for Run, or counts its records as overflow; r.mu is held.
func (r *Router) send(b *batch) {
	if r.waiting.Add(int64(b.n)) <= int64(r.opt.Backlog) {
		select {
		case r.in <- b:
			return
		default:
		}
	}
	r.waiting.Add(-int64(b.n))
	r.overflow.Add(uint64(b.n))
	r.recycle(b)
}

// fetch takes, in order, the full batches waiting in r.in and then the
// batch Submit is filling. It collects them under Submit's lock, so that a
// batch is never routed before one that was sent earlier: the records of
// an event may straddle two batches.
func (r *Router) fetch() []*batch {
	got := r.fetched[:0]
	r.mu.Lock()
	for more := true; more; {
		select {
		case b := <-r.in:
			got = append(got, b)
		default:
			more = false
		}
	}
	if b := r.cur; b != nil {
		r.cur = nil
		r.waiting.Add(int64(b.n))
		got = append(got, b)
	}
	r.mu.Unlock()
	r.fetched = got
	return got
}

func (r *Router) recycle(b *batch) {
	b.buf, b.n, b.refs = b.buf[:0], 0, 0
	select {
	case r.batches <- b:
	default:
	}
}

// release drops one reference to b, recycling it after the last.
func (r *Router) release(b *batch) {
	if b.refs--; b.refs == 0 {
		r.recycle(b)
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
	fetchTick := time.NewTicker(fetchEvery)
	defer fetchTick.Stop()
	r.memoAt = time.Now()
	var rec record.Record
	for {
		select {
		case <-ctx.Done():
			r.drain(&rec)
			return nil
		case b := <-r.in:
			r.addBatch(&rec, b, time.Now())
		case <-fetchTick.C:
			now := time.Now()
			for _, b := range r.fetch() {
				r.addBatch(&rec, b, now)
			}
		case now := <-tick.C:
			r.asm.Expire(now)
			if now.Sub(r.memoAt) >= memoFor {
				// A process can move to another cgroup after its first
				// event: what the memo says is trusted only this long.
				clear(r.pidMemo)
				r.memoAt = now
			}
		}
	}
}

// drain routes every record already submitted, then closes open events.
func (r *Router) drain(rec *record.Record) {
	for bs := r.fetch(); len(bs) > 0; bs = r.fetch() {
		now := time.Now()
		for _, b := range bs {
			r.addBatch(rec, b, now)
		}
	}
	r.asm.Flush()
}

// addBatch adds b's records in order. The events they go to keep b until
// they are routed.
func (r *Router) addBatch(rec *record.Record, b *batch, now time.Time) {
	r.waiting.Add(-int64(b.n))
	r.records.Add(uint64(b.n))
	b.refs = 1
	for p := b.buf; len(p) >= 6; {
		typ := binary.LittleEndian.Uint16(p)
		n := int(binary.LittleEndian.Uint32(p[2:]))
		r.add(rec, typ, p[6:6+n], b, now)
		p = p[6+n:]
	}
	r.release(b)
}

// add parses one record from its copy line (newline included), which b
// holds, and hands it to the assembler.
func (r *Router) add(rec *record.Record, typ uint16, line []byte, b *batch, now time.Time) {
	data, ok := r.payload(line)
	if !ok || record.Parse(rec, typ, data) != nil {
		r.malformed.Add(1)
		return
	}
	r.asm.Add(rec, line[:len(line)-1], b, now)
}

// payload returns the record's data in its copy line: what follows
// "[node=NODE ]type=NAME msg=", up to the newline.
func (r *Router) payload(line []byte) ([]byte, bool) {
	i := 0
	if r.opt.Node != "" {
		i = len("node=") + len(r.opt.Node) + 1
	}
	if len(line) < i+1 || line[len(line)-1] != '\n' {
		return nil, false
	}
	sp := bytes.IndexByte(line[i:], ' ')
	if sp < 0 || !bytes.HasPrefix(line[i+sp:], []byte(" msg=")) {
		return nil, false
	}
	return line[i+sp+len(" msg=") : len(line)-1], true
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{Records: r.records.Load(), Events: r.events.Load(), Partial: r.partial.Load(),
		Unattributed: r.unattributed.Load(), Overflow: r.overflow.Load(), Malformed: r.malformed.Load(), BadChain: r.badChain.Load()}
}

// Tenant returns the tenant called name, or nil.
func (r *Router) Tenant(name string) *Tenant { return r.table.Load().byName[name] }
