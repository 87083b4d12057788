package router

import (
	"context"
	"encoding/binary"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// Attributor finds, on a stock kernel, which of the cgroup directories
// dirs (sorted deepest first) held process pid when an event stamped at
// (ns since the epoch) happened; ppid (0: none) answers for a pid it does
// not know. Attribute returns the index into dirs, or -1. Settled reports
// whether it has learnt everything that bears on an event stamped at, so
// that the event need not wait. *procs.Tracker and procs.Now are the two.
type Attributor interface {
	Attribute(pid, ppid uint32, at int64, dirs []string) int
	Settled(at int64) bool
}

// follower is an Attributor told the registered cgroup directories at
// each change, none at first (*procs.Tracker: it reads no process while
// none is registered).
type follower interface {
	Follow(dirs []string)
}

// follow tells the attributor the directories of t, when it asks.
func (r *Router) follow(t *table) {
	if f, ok := r.opt.Attribute.(follower); ok {
		f.Follow(t.dirs)
	}
}

// Options configures a Router.
type Options struct {
	// EventTimeout closes an event that saw no EOE (default 500ms).
	EventTimeout time.Duration
	// Backlog is how many records may wait for the router (default
	// 262144: in make bench's quiet run with 100 containers the router
	// fell up to 63k records behind the host log in the first second of
	// a burst, and past 65536 lost whole batches; at about 200 bytes a
	// record the default holds some 50 MiB while the router catches up).
	Backlog int
	// Attribute finds containers by cgroup on stock kernels; nil disables.
	Attribute Attributor
	// Node is the node= prefix for copies, "" for none.
	Node string
	// Delay holds closed events that long before routing them. With cgroup
	// attribution it gives the process-events tracker time to learn about
	// the processes an event names (default 0; the daemon uses 100ms on
	// stock kernels). An event the attributor says is settled, or that is
	// not attributed by pid, is not held, unless an event held is ahead of
	// it.
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

// Router copies events to containers. Submit may be called from any
// goroutine, Run by one goroutine of its own; Set may be called any time.
type Router struct {
	opt   Options
	in    chan *batch
	table atomic.Pointer[table]
	asm   *Assembler

	// Submit's side, on cache lines of its own: the receiving goroutine
	// writes them for every record, and Run's fields must not share a
	// line with them.
	_        cpu.CacheLinePad
	mu       sync.Mutex
	cur      *batch      // records gather here, handed over when full or fetched
	batches  chan *batch // emptied batches, for reuse
	waiting  atomic.Int64
	overflow atomic.Uint64
	// unrouted are the records left unrouted since the last batch handed
	// over; the next batch carries them to Run.
	unrouted queue.Unrouted
	_        cpu.CacheLinePad

	// Used only by Run's goroutine.
	free    [][]byte     // record buffers, for reuse
	fetched []*batch     // fetch's, reused
	cids    []cid        // the event's CONTAINER_ID records, parsed
	sent    []*Container // containers an event was copied to (one copy each)
	scan    rules.Scan
	lines   []byte        // the event's records as copy lines, each ending in \n
	ends    []int         // lines[ends[i-1]:ends[i]] is record i's (ends[-1] = 0)
	trimmed []byte        // a container's rewritten lines: trimmed CONTAINER_ID, translated
	viewed  []byte        // a trimmed CONTAINER_ID line, before its translation
	fields  []view.Fields // the id fields of each copy line (lines), for the container view
	found   bool          // fields are the event's
	cfields view.Fields   // the id fields of viewed
	picks   []pick        // the lines a container gets
	items   [][]byte
	data    []byte
	waits   []syncWait // Sync calls not yet answered

	// syncs takes Sync's requests; stopped is closed when Run returns.
	syncs   chan chan struct{}
	stopped chan struct{}

	// Written by Run only.
	records, events, partial, unattributed atomic.Uint64
	malformed, badChain                    atomic.Uint64
}

// syncWait is a Sync call waiting for the events that closed by at.
type syncWait struct {
	at   time.Time
	done chan struct{}
}

// batch is records on their way to Run: each is its type (2 bytes), its
// length (4 bytes) and its data, one after another in buf.
type batch struct {
	buf []byte
	n   int
	// un are records left unrouted (overflow) just before this batch's:
	// Run tells every container's queue before routing the batch.
	un queue.Unrouted
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
)

// table is an immutable snapshot of the containers.
type table struct {
	gen     uint64
	byID    map[uint64]*Container
	byName  map[string]*Container
	parent  map[*Container]*Container
	cgroups []*Container // deepest (longest path) first
	dirs    []string     // cgroups' directories, same order
}

// New returns a router with no containers.
func New(opt Options) *Router {
	if opt.EventTimeout <= 0 {
		opt.EventTimeout = 500 * time.Millisecond
	}
	if opt.Backlog <= 0 {
		opt.Backlog = 262144
	}
	r := &Router{opt: opt, in: make(chan *batch, max(opt.Backlog/batchRecords, 1)+1), batches: make(chan *batch, 64),
		lines: make([]byte, 0, 16<<10), data: make([]byte, 0, 16<<10),
		syncs: make(chan chan struct{}), stopped: make(chan struct{})}
	r.asm = NewAssembler(opt.EventTimeout, opt.Delay, r.route)
	r.asm.early = r.settled
	r.table.Store(&table{byID: map[uint64]*Container{}, byName: map[string]*Container{}, parent: map[*Container]*Container{}})
	r.follow(r.table.Load())
	return r
}

// Set replaces the containers: tree says how they nest; containers holds one
// Container per container of tree, by name.
func (r *Router) Set(tree *registry.Tree, containers map[string]*Container) {
	old := r.table.Load()
	t := &table{gen: old.gen + 1, byID: map[uint64]*Container{}, byName: map[string]*Container{}, parent: map[*Container]*Container{}}
	for _, c := range tree.Containers() {
		tn := containers[c.Name]
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
	r.follow(t)
}

// Submit hands one record (already in the host log) to the router. It
// copies data and never blocks: when more than Options.Backlog records wait
// for the router, the record is counted in Overflow and not routed. With no
// container registered it does nothing. Records are routed in the order
// they were submitted, within fetchEvery.
func (r *Router) Submit(typ uint16, data []byte) {
	if len(r.table.Load().byName) == 0 {
		return // nobody to copy to: spare the host the routing work
	}
	r.mu.Lock()
	b := r.cur
	if b == nil {
		select {
		case b = <-r.batches:
		default:
			b = &batch{buf: make([]byte, 0, batchBytes+8<<10)}
		}
		b.un, r.unrouted = r.unrouted, queue.Unrouted{}
		r.cur = b
	}
	b.buf = binary.LittleEndian.AppendUint16(b.buf, typ)
	b.buf = binary.LittleEndian.AppendUint32(b.buf, uint32(len(data)))
	b.buf = append(b.buf, data...)
	b.n++
	if b.n >= batchRecords || len(b.buf) >= batchBytes {
		r.cur = nil
		r.send(b)
	}
	r.mu.Unlock()
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
	r.unrouted = r.unrouted.Then(b.un).Then(b.unrouted())
	r.recycle(b)
}

// unrouted describes b's records: their number, and the headers of the
// first and the last (zero when one cannot be parsed).
func (b *batch) unrouted() queue.Unrouted {
	u := queue.Unrouted{Records: uint64(b.n)}
	var last []byte
	for p := b.buf; len(p) >= 6; {
		n := int(binary.LittleEndian.Uint32(p[2:]))
		if last == nil {
			u.First = headerOf(p[6 : 6+n])
		}
		last, p = p[6:6+n], p[6+n:]
	}
	u.Last = headerOf(last)
	return u
}

// headerOf returns the header of a record's data, or the zero Stamp.
func headerOf(data []byte) queue.Stamp {
	var rec record.Record
	if record.Parse(&rec, 0, data) != nil {
		return queue.Stamp{}
	}
	return queue.Stamp{Sec: rec.Sec, Msec: rec.Msec, Serial: rec.Serial}
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
	} else if r.unrouted.Records > 0 {
		// Records overflowed and none came since: an empty batch takes
		// the news to the containers.
		got = append(got, &batch{un: r.unrouted})
		r.unrouted = queue.Unrouted{}
	}
	r.mu.Unlock()
	r.fetched = got
	return got
}

func (r *Router) recycle(b *batch) {
	b.buf, b.n = b.buf[:0], 0
	select {
	case r.batches <- b:
	default:
	}
}

// get returns a buffer holding a copy of data, for the assembler to keep
// until it releases it.
func (r *Router) get(data []byte) []byte {
	var buf []byte
	if n := len(r.free); n > 0 {
		buf = r.free[n-1]
		r.free = r.free[:n-1]
	} else {
		buf = make([]byte, 0, max(512, len(data)))
	}
	return append(buf[:0], data...)
}

func (r *Router) release(b []byte) {
	if cap(b) > 64<<10 || len(r.free) >= r.opt.Backlog {
		return
	}
	r.free = append(r.free, b)
}

// Run routes until ctx ends, then routes what is still open. Call it once.
func (r *Router) Run(ctx context.Context) error {
	defer close(r.stopped)
	period := r.opt.EventTimeout / 4
	if r.opt.Delay > 0 {
		period = min(period, r.opt.Delay/4)
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	fetchTick := time.NewTicker(fetchEvery)
	defer fetchTick.Stop()
	var rec record.Record
	for {
		select {
		case <-ctx.Done():
			r.drain(&rec)
			r.answer(true)
			return nil
		case b := <-r.in:
			r.addBatch(&rec, b, time.Now())
		case <-fetchTick.C:
			r.addFetched(&rec, time.Now())
		case now := <-tick.C:
			r.tick(&rec, now)
		case done := <-r.syncs:
			now := time.Now()
			r.addFetched(&rec, now)
			r.waits = append(r.waits, syncWait{at: now, done: done})
			r.answer(false)
		}
	}
}

// tick closes the events idle for the timeout and answers the Sync calls
// it can. It first takes the records waiting to be fetched (up to
// fetchEvery): an event whose next records wait there is not idle, and
// would otherwise be closed without them (a syscall event as partial,
// the rest then routed as an event of their own).
func (r *Router) tick(rec *record.Record, now time.Time) {
	r.addFetched(rec, now)
	r.asm.Expire(now, r.release)
	r.answer(false)
}

// addFetched adds the records fetch takes.
func (r *Router) addFetched(rec *record.Record, now time.Time) {
	for _, b := range r.fetch() {
		r.addBatch(rec, b, now)
	}
}

// Sync is a barrier: it returns once every record submitted before the
// call is routed, and every event that had closed by then copied to its
// tenants, or when ctx ends (its error). On stock kernels, where closed
// events wait Options.Delay for attribution, it waits that long; events
// still open (no EOE yet) are not waited for. After Run returned, Sync
// returns nil at once: Run routed everything as it stopped.
func (r *Router) Sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case r.syncs <- done:
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-r.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// answer releases the Sync calls whose events are all routed: no event
// that closed by their time is still held for the delay. With all, it
// releases every one (Run is stopping, everything is routed).
func (r *Router) answer(all bool) {
	if len(r.waits) == 0 {
		return
	}
	held, ok := r.asm.oldestHeld()
	n := 0
	for _, w := range r.waits {
		if !all && ok && !held.After(w.at) {
			break
		}
		close(w.done)
		n++
	}
	r.waits = append(r.waits[:0], r.waits[n:]...)
}

// drain routes every record already submitted, then closes open events.
func (r *Router) drain(rec *record.Record) {
	for bs := r.fetch(); len(bs) > 0; bs = r.fetch() {
		now := time.Now()
		for _, b := range bs {
			r.addBatch(rec, b, now)
		}
	}
	r.asm.Flush(r.release)
}

// addBatch adds b's records in order, then recycles b. Records left
// unrouted before b's are told first to every container.
func (r *Router) addBatch(rec *record.Record, b *batch, now time.Time) {
	if b.un.Records > 0 {
		r.tellUnrouted(b.un)
		b.un = queue.Unrouted{}
	}
	r.waiting.Add(-int64(b.n))
	r.records.Add(uint64(b.n))
	for p := b.buf; len(p) >= 6; {
		typ := binary.LittleEndian.Uint16(p)
		n := int(binary.LittleEndian.Uint32(p[2:]))
		r.add(rec, typ, r.get(p[6:6+n]), now)
		p = p[6+n:]
	}
	r.recycle(b)
}

// UnroutedRecorder is a Pusher that can be told of records the router
// left unrouted; *queue.Queue is one.
type UnroutedRecorder interface {
	Unrouted(u queue.Unrouted)
}

// tellUnrouted records u in the queue of every registered container: the
// router cannot know whose the records were, so each is told that some of
// its copies may be missing there.
func (r *Router) tellUnrouted(u queue.Unrouted) {
	for _, c := range r.table.Load().byName {
		if q, ok := c.Queue.(UnroutedRecorder); ok {
			q.Unrouted(u)
		}
	}
}

func (r *Router) add(rec *record.Record, typ uint16, buf []byte, now time.Time) {
	if err := record.Parse(rec, typ, buf); err != nil {
		r.malformed.Add(1)
		r.release(buf)
		return
	}
	r.asm.Add(rec, buf, now, r.release)
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{Records: r.records.Load(), Events: r.events.Load(), Partial: r.partial.Load(),
		Unattributed: r.unattributed.Load(), Overflow: r.overflow.Load(), Malformed: r.malformed.Load(), BadChain: r.badChain.Load()}
}

// Container returns the container called name, or nil.
func (r *Router) Container(name string) *Container { return r.table.Load().byName[name] }
