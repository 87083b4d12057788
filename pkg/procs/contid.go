package procs

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// On a kernel with the container-ID patches records carry their contid,
// and the tracker (Options.ContID) follows no cgroups: it keeps only the
// processes of the containers a View was made for (NewContIDView). A
// process joins when the kernel's op=set record names it (SetContID), or
// when it is found with the View's contid as the View is made, and its
// children join at their fork (a child inherits its parent's contid).
// Their namespaces are captured as for cgroup members and kept after
// they exit. A fork whose parent is not followed costs a look in a map
// and a slot in a ring of recent forks; exec events cost nothing.

// idProc is one followed process (one incarnation of a pid).
type idProc struct {
	start  int64   // its fork, or always when it was found already running
	exited int64   // when its exit was seen; 0 while alive
	vid    uint64  // the contid of the View it is followed for
	own    bool    // its contid is vid itself, not one nested in it
	ns     *nsCap  // its namespaces, once captured
	older  *idProc // the previous followed process of its pid, while retained
}

// forkItem is one fork seen, for the ring of recent forks.
type forkItem struct {
	child, parent uint32
	at            int64
}

// forkRing is how many recent forks are remembered: the forks a process
// made between its op=set and the daemon reading that record.
const forkRing = 1024

// idTable holds the followed processes and the contid Views.
type idTable struct {
	mu     sync.Mutex
	max    int
	retain int64
	pids   map[uint32]*idProc
	n      int
	exits  []exitItem
	views  map[uint64]*View
	forks  [forkRing]forkItem
	fnext  int
}

// idSys reads processes' audit container IDs: the running system's
// /proc, or a test's model.
type idSys interface {
	pids() []uint32
	contid(pid uint32) (uint64, error)
}

type procIDs struct{}

func (procIDs) pids() []uint32 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	out := make([]uint32, 0, len(ents))
	for _, e := range ents {
		if n, err := strconv.ParseUint(e.Name(), 10, 32); err == nil && n > 0 {
			out = append(out, uint32(n))
		}
	}
	return out
}

func (procIDs) contid(pid uint32) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/audit_containerid")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

func newIDTable(max int, retain int64) *idTable {
	return &idTable{max: max, retain: retain, pids: map[uint32]*idProc{}, views: map[uint64]*View{}}
}

// live returns pid's followed live process, or nil. The caller holds mu.
func (it *idTable) live(pid uint32) *idProc {
	if p := it.pids[pid]; p != nil && p.exited == 0 {
		return p
	}
	return nil
}

// add makes p pid's newest followed process. The caller holds mu.
func (it *idTable) add(pid uint32, p *idProc) bool {
	it.expire(never)
	if it.n >= it.max {
		return false
	}
	if old := it.pids[pid]; old != nil {
		if old.exited == 0 {
			old.exited = p.start // its exit was missed
			it.exits = append(it.exits, exitItem{pid, p.start})
		}
		p.older = old
	}
	it.pids[pid] = p
	it.n++
	return true
}

// expire forgets the processes that exited more than retain before now,
// and the oldest exited ones while the table is full. The caller holds mu.
func (it *idTable) expire(now int64) {
	for len(it.exits) > 0 {
		e := it.exits[0]
		if now != never && e.at > now-it.retain && it.n < it.max {
			break
		}
		if now == never && it.n < it.max {
			break
		}
		it.exits = it.exits[1:]
		// Drop that process and any older one of its pid.
		var prev *idProc
		for p := it.pids[e.pid]; p != nil; prev, p = p, p.older {
			if p.exited == e.at {
				for q := p; q != nil; q = q.older {
					it.n--
				}
				if prev == nil {
					delete(it.pids, e.pid)
				} else {
					prev.older = nil
				}
				break
			}
		}
	}
	if len(it.exits) == 0 {
		it.exits = nil
	}
}

// nsAt is pidTable.nsAt for the followed processes.
func (it *idTable) nsAt(pid uint32, at int64) *nsCap {
	it.mu.Lock()
	defer it.mu.Unlock()
	for p := it.pids[pid]; p != nil; p = p.older {
		if p.start > at+Slack || (p.exited != 0 && at > p.exited) {
			continue
		}
		return p.ns
	}
	return nil
}

// idFork takes child into its parent's View when the parent is followed,
// and remembers the fork. For Run's goroutine.
func (t *Tracker) idFork(child, parent uint32, at int64) {
	it := t.ids
	it.mu.Lock()
	it.forks[it.fnext] = forkItem{child, parent, at}
	it.fnext = (it.fnext + 1) % forkRing
	p := it.live(parent)
	added := p != nil && it.add(child, &idProc{start: at, vid: p.vid, own: p.own})
	it.mu.Unlock()
	if added {
		if t.nsys == nil {
			t.nsys = t.scanSys()
		}
		t.idCapture(t.nsys, child, false)
	}
}

// idExec looks again at a followed process whose View lacks its id
// maps (a runtime writes them after making the namespace). For Run's
// goroutine.
func (t *Tracker) idExec(pid uint32) {
	it := t.ids
	it.mu.Lock()
	p := it.live(pid)
	it.mu.Unlock()
	if p != nil {
		if t.nsys == nil {
			t.nsys = t.scanSys()
		}
		t.idCapture(t.nsys, pid, false)
	}
}

// idExit marks a followed process exited. For Run's goroutine.
func (t *Tracker) idExit(pid uint32, at int64) {
	it := t.ids
	it.mu.Lock()
	defer it.mu.Unlock()
	if p := it.live(pid); p != nil {
		p.exited = at
		it.exits = append(it.exits, exitItem{pid, at})
	}
	it.expire(at)
}

// SetContID applies a successful op=set record of the kernel: process pid
// was given contid id at stamp at. When a View is made for id, the
// process and the children it forked since (while the record was on its
// way) are followed for it; a followed process given a contid that no
// View is made for stays in its View, as nested in it. Others cost a look
// in a map. Only for a tracker made with Options.ContID.
func (t *Tracker) SetContID(pid uint32, id uint64, at int64) {
	it := t.ids
	if it == nil || pid == 0 {
		return
	}
	it.mu.Lock()
	_, viewed := it.views[id]
	p := it.live(pid)
	switch {
	case !viewed && p == nil:
		it.mu.Unlock()
		return
	case !viewed:
		p.own = false // a container nested in p's
		it.mu.Unlock()
		return
	case p != nil:
		p.vid, p.own = id, true
	default:
		if !it.add(pid, &idProc{start: always, vid: id, own: true}) {
			it.mu.Unlock()
			return
		}
	}
	// The children forked since the set, and theirs: they inherited id
	// before this record was read.
	todo := []uint32{pid}
	for i := 0; i < len(todo); i++ {
		for k := range it.forks {
			f := it.forks[(it.fnext+k)%forkRing]
			if f.parent != todo[i] || f.at < at-Slack || f.child == 0 || slices.Contains(todo, f.child) {
				continue
			}
			if c := it.live(f.child); c != nil {
				c.vid, c.own = id, true
			} else if !it.add(f.child, &idProc{start: f.at, vid: id, own: true}) {
				continue
			}
			todo = append(todo, f.child)
		}
	}
	it.mu.Unlock()
	sys := t.scanSys()
	for _, c := range todo {
		t.idCapture(sys, c, true)
	}
}

// idCapture reads and keeps the namespaces of followed process pid and
// takes it into its View; again says a process captured already is taken
// into its View all the same.
func (t *Tracker) idCapture(sys nsSys, pid uint32, again bool) {
	it := t.ids
	it.mu.Lock()
	p := it.live(pid)
	var v *View
	var c *nsCap
	own := false
	if p != nil {
		v, c, own = it.views[p.vid], p.ns, p.own
	}
	it.mu.Unlock()
	if v == nil || (c != nil && !again && !v.needMaps.Load()) {
		return
	}
	if c == nil {
		if c = t.readNS(sys, pid); c == nil {
			return
		}
		it.mu.Lock()
		if it.live(pid) != p {
			it.mu.Unlock()
			return
		}
		if p.ns == nil {
			p.ns = c
		}
		c = p.ns
		it.mu.Unlock()
		t.captures.Add(1)
	}
	v.observe(sys, pid, c, own)
}

// NewContIDView returns the View of the container whose audit container
// ID is id, and follows the processes that have it now (read from
// /proc/PID/audit_containerid, which needs CAP_AUDIT_CONTROL), and those
// whose contid nested(c) says is nested in id. nested may be nil. Only
// for a tracker made with Options.ContID. Close it when the container
// goes.
func (t *Tracker) NewContIDView(id uint64, nested func(uint64) bool) (*View, error) {
	it := t.ids
	if it == nil {
		return nil, fmt.Errorf("the process-events tracker follows cgroups, not audit container IDs")
	}
	v := &View{t: t, dir: "contid " + strconv.FormatUint(id, 10), contid: id, byID: true, initLevel: -1}
	v.needMaps.Store(true)
	it.mu.Lock()
	it.views[id] = v
	it.mu.Unlock()
	ids := t.idSys
	if ids == nil {
		ids = procIDs{}
	}
	var found []uint32
	for _, pid := range ids.pids() {
		c, err := ids.contid(pid)
		if err != nil || (c != id && (nested == nil || !nested(c))) {
			continue
		}
		it.mu.Lock()
		p := it.live(pid)
		switch {
		case p == nil:
			if !it.add(pid, &idProc{start: always, vid: id, own: c == id}) {
				it.mu.Unlock()
				continue
			}
		case c == id:
			p.vid, p.own = id, true
		}
		it.mu.Unlock()
		found = append(found, pid)
	}
	sys := t.scanSys()
	initsFirst(sys, found)
	for _, pid := range found {
		t.idCapture(sys, pid, true)
	}
	return v, nil
}

// closeID stops following for View v; what is known stays.
func (it *idTable) closeID(v *View) {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.views[v.contid] == v {
		delete(it.views, v.contid)
	}
}

// idViews is the number of contid Views.
func (it *idTable) idViews() int {
	if it == nil {
		return 0
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	return len(it.views)
}

// newIDTracker is NewTracker for Options.ContID.
func newIDTracker(log hclog.Logger, opt Options) (*Tracker, error) {
	t := newTracker(log, newPidTable(1, int64(opt.Retain)))
	t.ids = newIDTable(opt.MaxEntries, int64(opt.Retain))
	err := t.open()
	if err == nil {
		err = t.subscribe()
	}
	if err != nil {
		// Without process events (a kernel without CONFIG_PROC_EVENTS)
		// the processes op=set records name, and those found when a
		// View is made, are followed; their children are not.
		log.Warn("no process events: containers' views know only the processes named by op=set records and those running when they were registered, not their children", "error", err)
		if t.conn != nil {
			t.conn.Close()
			t.conn = nil
		}
		t.fd = -1
		if t.wakeFd < 0 {
			if t.wakeFd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
				t.wakeFd = -1
				return nil, fmt.Errorf("making an eventfd: %w", err)
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err == nil {
		t.hostUserNS = st.Ino
	}
	t.syncClocks()
	t.watermark.Store(t.now())
	return t, nil
}

// idSweep marks exited the followed processes whose /proc entry is gone:
// their exits were among the events the kernel dropped. At most every 5s.
func (t *Tracker) idSweep() {
	if time.Since(t.lastSweep) <= 5*time.Second {
		return
	}
	t.lastSweep = time.Now()
	t.resweeps.Add(1)
	it := t.ids
	it.mu.Lock()
	var live []uint32
	for pid, p := range it.pids {
		if p.exited == 0 {
			live = append(live, pid)
		}
	}
	it.mu.Unlock()
	now := t.now()
	for _, pid := range live {
		if _, err := os.Stat("/proc/" + strconv.FormatUint(uint64(pid), 10)); err != nil {
			t.idExit(pid, now)
		}
	}
}
