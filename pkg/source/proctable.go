package source

import (
	"sync"
)

// cgset is one distinct content of /proc/PID/cgroup, shared by every pid
// that has it (most pids of a host share a handful).
type cgset struct {
	cg   Cgroups
	key  string // the file content it was parsed from
	refs int    // pids pointing at it
}

// pidEntry is what the table knows of one process.
type pidEntry struct {
	set    *cgset
	exited int64 // when the exit was seen (table clock, ns); 0 while alive
}

// exitItem is one exit in the order they were seen.
type exitItem struct {
	pid uint32
	at  int64
}

// pidTable maps process IDs to cgroups. Exited processes stay for retain
// (or until room is needed: the oldest exit goes first); live processes are
// never evicted, and when the table is full of them a new one is not stored
// (counted in dropped).
type pidTable struct {
	max    int
	retain int64

	mu      sync.RWMutex // guards the fields below
	pids    map[uint32]pidEntry
	sets    map[string]*cgset
	exits   []exitItem // FIFO from exits[head]
	head    int
	exited  int // entries with exited != 0
	evicted uint64
	dropped uint64
}

func newPidTable(max int, retain int64) *pidTable {
	return &pidTable{
		max:    max,
		retain: retain,
		pids:   make(map[uint32]pidEntry),
		sets:   make(map[string]*cgset),
	}
}

// get returns the cgroups of pid. It does not allocate.
func (t *pidTable) get(pid uint32) (Cgroups, bool) {
	t.mu.RLock()
	e, ok := t.pids[pid]
	t.mu.RUnlock()
	if !ok {
		return Cgroups{}, false
	}
	return e.set.cg, true
}

// differs reports whether pid's entry was read from other content (or
// there is none).
func (t *pidTable) differs(pid uint32, content []byte) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.pids[pid]
	return !ok || e.set.key != string(content)
}

// placed reports whether pid is in the table and, if so, whether it is in
// directory d of d's hierarchy.
func (t *pidTable) placed(pid uint32, d CgroupDir) (known, there bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e, ok := t.pids[pid]
	if !ok {
		return false, false
	}
	p, ok := e.set.cg.PathFor(d)
	return true, ok && p == d.Path
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

func (t *pidTable) release(s *cgset) {
	s.refs--
	if s.refs == 0 {
		delete(t.sets, s.key)
	}
}

// set records that process pid has the cgroups in content (as read from
// /proc/PID/cgroup); an exited entry stays exited. With onlyNew it leaves
// an entry that exists.
func (t *pidTable) set(pid uint32, content []byte, onlyNew bool) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.pids[pid]
	if had && onlyNew {
		return nil
	}
	s, err := t.intern(content)
	if err != nil {
		return err
	}
	if !had && !t.room() {
		if s.refs == 0 {
			delete(t.sets, s.key)
		}
		return nil
	}
	s.refs++
	e := pidEntry{set: s}
	if had {
		// A late read (of a zombie) does not bring an exited process back.
		e.exited = old.exited
		t.release(old.set)
	}
	t.pids[pid] = e
	return nil
}

// inherit gives a new child its parent's cgroups, as fork does. A child
// that is already known alive (seeded from /proc after the fork) is left
// alone. It reports false when the parent is unknown.
func (t *pidTable) inherit(child, parent uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.pids[child]
	if had && old.exited == 0 {
		return true
	}
	p, ok := t.pids[parent]
	if !ok {
		return false
	}
	if !had && !t.room() {
		return true
	}
	p.set.refs++
	if had {
		t.forget(old)
	}
	t.pids[child] = pidEntry{set: p.set}
	return true
}

// move puts pid in directory d of one hierarchy, keeping its place in the
// others. A pid the table does not know (gone before its fork was read) is
// entered as exited at now.
func (t *pidTable) move(pid uint32, d CgroupDir, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, had := t.pids[pid]
	var cur Cgroups
	if had {
		cur = old.set.cg
	}
	s, err := t.intern(cur.withPlace(d).procFormat())
	if err != nil {
		return
	}
	if !had && !t.room() {
		if s.refs == 0 {
			delete(t.sets, s.key)
		}
		return
	}
	s.refs++
	e := pidEntry{set: s}
	if had {
		e.exited = old.exited
		t.release(old.set)
	} else {
		e.exited = now
		t.exited++
		t.exits = append(t.exits, exitItem{pid, now})
	}
	t.pids[pid] = e
}

// forget drops what entry e holds; the caller replaces or deletes it.
func (t *pidTable) forget(e pidEntry) {
	if e.exited != 0 {
		t.exited--
	}
	t.release(e.set)
}

// exit marks pid exited at now; it stays for retain.
func (t *pidTable) exit(pid uint32, now int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.pids[pid]
	if !ok || e.exited != 0 {
		return
	}
	if now == 0 {
		now = 1
	}
	e.exited = now
	t.pids[pid] = e
	t.exited++
	t.exits = append(t.exits, exitItem{pid, now})
	// Stale items (of pids reused since) could pile up: keep at most twice
	// the table's size, evicting the oldest exits if need be.
	for len(t.exits)-t.head > 2*t.max {
		if t.popExit() {
			t.evicted++
		}
	}
	t.expireLocked(now)
}

// expire removes the entries of processes that exited more than retain
// before now.
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

// popExit removes the oldest exit from the FIFO and its entry if that is
// still the same exit (the pid may have been reused). It reports whether
// an entry went.
func (t *pidTable) popExit() bool {
	x := t.exits[t.head]
	t.exits[t.head] = exitItem{}
	t.head++
	e, ok := t.pids[x.pid]
	if !ok || e.exited != x.at {
		return false
	}
	t.forget(e)
	delete(t.pids, x.pid)
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

// room makes room for one more entry by evicting the oldest exited one
// when the table is full; false means the table is full of live processes.
func (t *pidTable) room() bool {
	if len(t.pids) < t.max {
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

// sweep marks exited, at now, every live entry whose pid is not in alive:
// exits the table missed (events lost to an overrun).
func (t *pidTable) sweep(alive map[uint32]struct{}, now int64) {
	t.mu.Lock()
	var gone []uint32
	for pid, e := range t.pids {
		if _, ok := alive[pid]; !ok && e.exited == 0 {
			gone = append(gone, pid)
		}
	}
	t.mu.Unlock()
	for _, pid := range gone {
		t.exit(pid, now)
	}
}

// counts returns the number of entries, of exited entries, and of distinct
// cgroup sets, and the evicted and dropped counters.
func (t *pidTable) counts() (entries, exited, sets int, evicted, dropped uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.pids), t.exited, len(t.sets), t.evicted, t.dropped
}
