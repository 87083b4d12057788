package procs

import (
	"math"
	"sync"
	"sync/atomic"
)

// Times in the table are nanoseconds of CLOCK_REALTIME, the clock of audit
// record stamps. A record's stamp is the coarse real-time clock at the
// syscall's entry, cut to the millisecond: it can be up to one tick and one
// millisecond earlier than the moment it stands for, never later. Slack
// covers that (a tick is at most 10ms, at HZ=100).
const Slack int64 = 12e6

const (
	never  = math.MaxInt64 // a bound not reached yet
	always = math.MinInt64 // a bound in the past of every stamp
)

// cgset is one distinct content of /proc/PID/cgroup, shared by every pid
// that has it (most pids of a host share a handful).
type cgset struct {
	cg   Cgroups
	key  string // the file content it was parsed from
	refs int    // segments pointing at it
	// memo is the router's answer for this set: the generation of the
	// registered directories it was computed for (high 32 bits) and the
	// index in them plus one (low 32 bits; 0 is none).
	memo atomic.Uint64
	// vmemo is the View of the set's processes: the generation of the
	// Views (high 32 bits) and the index in them plus one (low 32 bits;
	// 0 is none).
	vmemo atomic.Uint64
}

// seg is a stretch of a process's life spent in one set of cgroups. An
// event stamped before lo happened before the stretch began; one stamped
// at or after hi happened after it began (if no later stretch began since).
// Between lo and hi the event may belong to this stretch or the one before:
// the process moved at a moment the tracker did not see, only bounded.
// obs is hi as observed; hi can be brought down to lo for the process's
// own events (it moved itself), never for the children it forked then.
// A nil set is the stretch a child inherited: its parent's sets at its
// fork, asked of the parent's history when needed, so that a move of the
// parent learnt after the fork still counts.
type seg struct {
	set    *cgset
	lo, hi int64
	obs    int64
	seen   int64 // the last time the process was seen in set
	other  bool  // first seen in a cgroup's list after another's write: it did not move itself
}

// proc is one process (one incarnation of a pid): its stretches, oldest
// first.
type proc struct {
	start  int64 // its fork (or the earliest moment it is known to exist)
	exited int64 // when its exit was seen; 0 while alive
	exec   int64 // its last exec, or its fork; never when unknown
	segs   []seg
	parent *proc  // whose sets at start the inherited stretch has
	cut    bool   // its oldest stretches were dropped: before segs[0], unknown
	lost   bool   // older processes of its pid were dropped: before start, unknown
	older  *proc  // the previous process that had this pid, while retained
	ns     *nsCap // its namespaces, when it was seen in a View's container
}

func (p *proc) last() *seg { return &p.segs[len(p.segs)-1] }

// maxSegs bounds the stretches kept per process; the oldest goes first.
// maxOlder bounds the exited processes kept per pid.
const (
	maxSegs  = 8
	maxOlder = 8
)

// exitItem is one exit in the order they were seen.
type exitItem struct {
	pid uint32
	at  int64
}

// pidTable maps process IDs to the history of their cgroups. Exited
// processes stay for retain (or until room is needed: the oldest exit goes
// first); live processes are never evicted, and when the table is full of
// them a new one is not stored (counted in dropped).
type pidTable struct {
	max    int
	retain int64

	mu      sync.RWMutex // guards the fields below
	pids    map[uint32]*proc
	sets    map[string]*cgset
	n       int        // processes, the retained older ones included
	exits   []exitItem // FIFO from exits[head]
	head    int
	exited  int // processes with exited != 0
	evicted uint64
	dropped uint64
}

func newPidTable(max int, retain int64) *pidTable {
	return &pidTable{
		max:    max,
		retain: retain,
		pids:   make(map[uint32]*proc),
		sets:   make(map[string]*cgset),
	}
}

// find returns the process that had pid at ts, a kernel time (exact):
// the newest one begun by then and not exited before. The caller holds mu.
func (t *pidTable) find(pid uint32, ts int64) *proc {
	p := t.pids[pid]
	for p != nil && p.start > ts {
		p = p.older
	}
	if p != nil && p.exited != 0 && ts > p.exited {
		return nil // after its exit: a newer process the table missed
	}
	return p
}

// at appends to out the sets process pid may have been in at stamp at:
// one, or more when a move is only bounded around then, or when the pid
// was reused within Slack of the stamp. It does not allocate when out has
// room.
func (t *pidTable) at(pid uint32, at int64, out []*cgset) []*cgset {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for p := t.pids[pid]; p != nil; p = p.older {
		if p.lost && at < p.start+Slack && !containsSet(out, nil) {
			out = append(out, nil) // a dropped process may have had it then
		}
		if p.start > at+Slack || (p.exited != 0 && at > p.exited) {
			continue
		}
		out = p.candidates(at, out)
		if p.start <= at-Slack {
			break // older ones ended before it began
		}
	}
	return out
}

// candidates appends the sets p may have been in at at; for a child's
// fork (child), moves of p it did itself count only where seen. A nil set
// among them means a place no longer known.
func (p *proc) candidates(at int64, out []*cgset) []*cgset {
	return p.cands(at, out, false, 0)
}

// maxDepth bounds the chain of inherited stretches followed.
const maxDepth = 64

func (p *proc) cands(at int64, out []*cgset, child bool, depth int) []*cgset {
	n := len(p.segs)
	first := p.segs[0].hi
	if child {
		first = p.segs[0].obs
	}
	if p.cut && at < first && !containsSet(out, nil) {
		out = append(out, nil) // unknown
	}
	for k := range p.segs {
		if k > 0 && at < p.segs[k].lo {
			break
		}
		if k+1 < n {
			hi := p.segs[k+1].hi
			if child {
				hi = p.segs[k+1].obs
			}
			if at >= hi {
				continue
			}
		}
		if s := p.segs[k].set; s == nil {
			if p.parent != nil && depth < maxDepth {
				out = p.parent.cands(p.start, out, true, depth+1)
			}
		} else if !containsSet(out, s) && (!p.cut || k > 0 || at >= p.segs[0].lo) {
			out = append(out, s)
		}
	}
	return out
}

// lastSets appends the sets of p's last stretch.
func (p *proc) lastSets(out []*cgset) []*cgset {
	k := len(p.segs) - 1
	if s := p.segs[k].set; s != nil {
		return append(out, s)
	}
	if p.parent == nil {
		return out
	}
	out = p.parent.cands(p.start, out, true, 1)
	if containsSet(out, nil) {
		return out[:0]
	}
	return out
}

func containsSet(s []*cgset, c *cgset) bool {
	for _, x := range s {
		if x == c {
			return true
		}
	}
	return false
}

// current returns the cgroups pid's newest process was last seen in.
func (t *pidTable) current(pid uint32) (Cgroups, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.pids[pid]
	if p == nil {
		return Cgroups{}, false
	}
	// Where it was last seen: not a place it may have moved to unseen.
	k := len(p.segs) - 1
	for k > 0 && p.segs[k].obs == never {
		k--
	}
	if s := p.segs[k].set; s != nil {
		return s.cg, true
	}
	if p.parent == nil {
		return Cgroups{}, false
	}
	var buf [4]*cgset
	c := p.parent.cands(p.start, buf[:0], true, 1)
	if len(c) == 0 || c[len(c)-1] == nil {
		return Cgroups{}, false
	}
	return c[len(c)-1].cg, true
}

// exitedProc reports whether pid's newest process in the table has exited.
func (t *pidTable) exitedProc(pid uint32) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.pids[pid]
	return p != nil && p.exited != 0
}

// live reports whether pid's newest process is in the table and alive, and
// if so its current set's content.
func (t *pidTable) live(pid uint32) (key string, ok bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		return "", false
	}
	var buf [4]*cgset
	if c := p.lastSets(buf[:0]); len(c) == 1 {
		return c[0].key, true
	}
	return "", true
}

// placed reports whether pid's newest process is alive in the table and,
// if so, whether it is in directory d of d's hierarchy.
func (t *pidTable) placed(pid uint32, d CgroupDir) (known, there bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		return false, false
	}
	var buf [4]*cgset
	c := p.lastSets(buf[:0])
	there = len(c) > 0
	for _, s := range c {
		path, ok := s.cg.PathFor(d)
		there = there && ok && path == d.Path
	}
	return true, there
}

// intern returns the shared set for content, parsing it when new; the
// caller holds mu and takes a reference.
func (t *pidTable) intern(content []byte) (*cgset, error) {
	if s, ok := t.sets[string(content)]; ok {
		return s, nil
	}
	cg, err := parseProcCgroup(content)
	if err != nil {
		return nil, err
	}
	s := &cgset{cg: cg, key: string(content)}
	t.sets[s.key] = s
	return s, nil
}

func (t *pidTable) unintern(s *cgset) {
	if s.refs == 0 {
		delete(t.sets, s.key)
	}
}

func (t *pidTable) release(s *cgset) {
	s.refs--
	if s.refs == 0 {
		delete(t.sets, s.key)
	}
}

// observe records that pid was seen, at now, in the cgroups of content
// (as read from /proc/PID/cgroup). A process the table does not have alive
// is added, as begun after its pid's previous process ended (or, with
// begun, from the start of time: seeded at start). A process seen in
// another set than before moved between the last sighting and now. It
// reports whether a stretch began.
func (t *pidTable) observe(pid uint32, content []byte, now int64, begun, other bool) (moved bool, err error) {
	return t.observeRead(pid, content, now, begun, other, false)
}

// observeRead is observe; blind says the read told nothing of the v1
// places (their content is the history's): the same set then is no
// sighting, the last one stays the last.
func (t *pidTable) observeRead(pid uint32, content []byte, now int64, begun, other, blind bool) (moved bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, err := t.intern(content)
	if err != nil {
		return false, err
	}
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		start := int64(always)
		if p != nil {
			start = p.exited + 1
		} else if !begun {
			start = now - t.retain // it existed, since when is unknown
		}
		if !t.room() {
			t.unintern(s)
			return false, nil
		}
		s.refs++
		t.add(pid, &proc{start: start, exec: never, segs: []seg{{set: s, lo: always, hi: always, obs: always, seen: now}}})
		return false, nil
	}
	last := p.last()
	var buf [4]*cgset
	if c := p.lastSets(buf[:0]); len(c) == 1 && c[0] == s {
		if !blind {
			last.seen = max(last.seen, now)
		}
		return false, nil
	}
	s.refs++
	t.push(p, seg{set: s, lo: last.seen - Slack, hi: now, obs: now, seen: now, other: other})
	return true, nil
}

// push appends a stretch to p, dropping its oldest when it has maxSegs.
func (t *pidTable) push(p *proc, sg seg) {
	if len(p.segs) == maxSegs {
		if p.segs[0].set == nil {
			p.parent = nil
		} else {
			t.release(p.segs[0].set)
		}
		copy(p.segs, p.segs[1:])
		p.segs = p.segs[:len(p.segs)-1]
		p.cut = true
	}
	p.segs = append(p.segs, sg)
}

// add makes p pid's newest process, the one before it (which the caller
// has marked exited) kept as older. The caller holds mu and made room.
func (t *pidTable) add(pid uint32, p *proc) {
	p.older = t.pids[pid]
	t.pids[pid] = p
	t.n++
	// Keep at most a few older processes of one pid: each is an exit in
	// the FIFO too, which then finds it gone.
	q, k := p, 0
	for q.older != nil {
		if k == maxOlder {
			t.drop(q.older)
			q.older, q.lost = nil, true
			break
		}
		q, k = q.older, k+1
	}
}

// drop forgets p and every older process chained to it.
func (t *pidTable) drop(p *proc) {
	for ; p != nil; p = p.older {
		for _, sg := range p.segs {
			if sg.set != nil {
				t.release(sg.set)
			}
		}
		if p.exited != 0 {
			t.exited--
		}
		t.n--
		t.evicted++
	}
}

// fork adds child, forked by parent at ts, in the cgroups parent was in
// then (asked of the parent's history when needed). A live process the
// table has under child's pid missed its exit: it is taken to have exited
// at ts. It reports false when the parent is unknown at ts (the caller
// then reads /proc).
func (t *pidTable) fork(child, parent uint32, ts int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	pp := t.find(parent, ts)
	if pp == nil {
		return false
	}
	if old := t.pids[child]; old != nil && old.exited == 0 {
		if old.start >= ts {
			return true // seeded from /proc after the fork
		}
		t.exitLocked(child, old, ts)
	}
	if !t.room() {
		return true
	}
	t.add(child, &proc{start: ts, exec: ts, parent: pp,
		segs: []seg{{lo: always, hi: always, obs: always, seen: ts}}})
	return true
}

// exec records an exec of pid at ts (before its /proc is read).
func (t *pidTable) exec(pid uint32, ts int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.pids[pid]; p != nil && p.exited == 0 {
		p.exec = ts
		return true
	}
	return false
}

// selfMove says that pid, seen in d after its own write to d's
// cgroup.procs, moved itself there: its own records since its last exec
// (or fork) are taken to be the container's, not only those after the
// moment the tracker saw it there. When the last exec the tracker knows
// came before the last sighting elsewhere, the move is placed at that
// sighting; with no exec known, nothing changes.
func (t *pidTable) selfMove(pid uint32, d CgroupDir, moved bool, since int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pids[pid]
	if p == nil || len(p.segs) < 2 {
		return false
	}
	cur := &p.segs[len(p.segs)-1]
	if cur.set == nil || cur.other || !cur.set.cg.In(d) || (!moved && cur.lo == cur.hi) || cur.obs <= since {
		return false // not a move into d, one already placed, or one seen before the write
	}
	var buf [4]*cgset
	for _, s := range p.cands(cur.lo-1, buf[:0], false, 0) {
		if s == nil || s.cg.Within(d) {
			return false // it was in d before, or where is not known
		}
	}
	if p.exec == never {
		return false
	}
	cur.hi = min(cur.hi, max(cur.lo, p.exec-Slack))
	return true
}

// gone says that pid, already gone, wrote to the cgroup.procs of d: it
// may have moved itself there, or written another pid. From its last
// sighting on, its records may have been in either place, and go only to
// a container that holds both.
func (t *pidTable) gone(pid uint32, d CgroupDir) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pids[pid]
	if p == nil {
		return
	}
	var buf [4]*cgset
	seen := p.last().seen
	for _, c := range p.lastSets(buf[:0]) {
		s, err := t.intern(c.cg.withPlace(d).procFormat())
		if err != nil || s == c {
			continue
		}
		s.refs++
		t.push(p, seg{set: s, lo: seen - Slack, hi: never, obs: never, seen: seen})
	}
}

// maybeMoved says that pid, gone, may have been moved to d before it
// exited, by a write the tracker read too late to see whom it moved.
func (t *pidTable) maybeMoved(pid uint32, d CgroupDir) { t.gone(pid, d) }

// exit marks pid exited at now; it stays for retain.
func (t *pidTable) exit(pid uint32, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		return
	}
	t.exitLocked(pid, p, now)
	t.expireLocked(now)
}

func (t *pidTable) exitLocked(pid uint32, p *proc, now int64) {
	if now == 0 {
		now = 1
	}
	p.exited = now
	t.exited++
	t.exits = append(t.exits, exitItem{pid, now})
	// Stale items could pile up: keep at most twice the table's size,
	// evicting the oldest exits if need be.
	for len(t.exits)-t.head > 2*t.max {
		t.popExit()
	}
}

// expire removes the processes that exited more than retain before now.
func (t *pidTable) expire(now int64) {
	t.mu.Lock()
	t.expireLocked(now)
	t.mu.Unlock()
}

func (t *pidTable) expireLocked(now int64) {
	for t.head < len(t.exits) && t.exits[t.head].at+t.retain <= now {
		t.popExit()
	}
	t.compact()
}

// popExit removes the oldest exit from the FIFO and its process if that is
// still there. It reports whether a process went.
func (t *pidTable) popExit() bool {
	x := t.exits[t.head]
	t.exits[t.head] = exitItem{}
	t.head++
	var newer *proc
	p := t.pids[x.pid]
	for p != nil && p.exited != x.at {
		newer, p = p, p.older
	}
	if p == nil {
		return false
	}
	// p and the older ones go: they exited earlier still.
	if newer == nil {
		delete(t.pids, x.pid)
	} else {
		newer.older, newer.lost = nil, true
	}
	ev := t.evicted
	t.drop(p)
	t.evicted = ev
	return true
}

// compact keeps the FIFO's dead prefix from growing without bound.
func (t *pidTable) compact() {
	if t.head == len(t.exits) {
		t.exits, t.head = t.exits[:0], 0
	} else if t.head > 1024 && t.head > len(t.exits)/2 {
		n := copy(t.exits, t.exits[t.head:])
		t.exits, t.head = t.exits[:n], 0
	}
}

// room makes room for one more process by evicting the oldest exited one
// when the table is full; false means the table is full of live processes.
func (t *pidTable) room() bool {
	if t.n < t.max {
		return true
	}
	for t.head < len(t.exits) {
		if t.popExit() {
			t.evicted++
			t.compact()
			return true
		}
	}
	t.compact()
	t.dropped++
	return false
}

// sweep marks exited, at now, every live process whose pid is not in
// alive: exits the table missed (events lost to an overrun).
func (t *pidTable) sweep(alive map[uint32]struct{}, now int64) {
	t.mu.Lock()
	var gone []uint32
	for pid, p := range t.pids {
		if _, ok := alive[pid]; !ok && p.exited == 0 {
			gone = append(gone, pid)
		}
	}
	t.mu.Unlock()
	for _, pid := range gone {
		t.exit(pid, now)
	}
}

// counts returns the number of processes, of exited processes, and of
// distinct cgroup sets, and the evicted and dropped counters.
func (t *pidTable) counts() (entries, exited, sets int, evicted, dropped uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n, t.exited, len(t.sets), t.evicted, t.dropped
}

// uncaptured returns the set pid's newest live process is in (nil when
// not known, or not one), and its namespaces if they were captured.
func (t *pidTable) uncaptured(pid uint32) (*cgset, *nsCap) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		return nil, nil
	}
	var buf [4]*cgset
	if c := p.lastSets(buf[:0]); len(c) == 1 {
		return c[0], p.ns
	}
	return nil, p.ns
}

// setCapture keeps c with pid's newest live process, unless it has its
// own already; false means there is none.
func (t *pidTable) setCapture(pid uint32, c *nsCap) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.pids[pid]
	if p == nil || p.exited != 0 {
		return false
	}
	if p.ns == nil {
		p.ns = c
	}
	return true
}

// nsAt returns the namespaces captured of the process that had pid at
// stamp at: the newest begun by then (within Slack) and not exited
// before it.
func (t *pidTable) nsAt(pid uint32, at int64) *nsCap {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for p := t.pids[pid]; p != nil; p = p.older {
		if p.start > at+Slack || (p.exited != 0 && at > p.exited) {
			continue
		}
		return p.ns
	}
	return nil
}

// within returns the pids of the live processes last seen in d or below.
func (t *pidTable) within(d CgroupDir) []uint32 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var out []uint32
	var buf [4]*cgset
	for pid, p := range t.pids {
		if p.exited != 0 {
			continue
		}
		c := p.lastSets(buf[:0])
		if len(c) == 1 && c[0].cg.Within(d) {
			out = append(out, pid)
		}
	}
	return out
}
