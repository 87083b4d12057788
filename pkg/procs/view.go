package procs

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// A tenant's copies show pids as the container's pid namespace shows them
// and ids as its user namespace maps them. The kernel writes host values;
// what it knows of the others is in /proc while the process lives:
// NSpid in /proc/PID/status (fixed for the process's life), its pid
// namespace (/proc/PID/ns/pid) and the user namespace's uid_map and
// gid_map. So when the tracker sees a process of a cgroup that a View
// was made for (its fork, its exec, a write to a cgroup.procs, the scan
// when the View is made), it reads them and keeps them with the process,
// where they stay known after it exits. Processes of other cgroups cost
// a look at their set's memo.

// pidNS is one pid namespace: its nsfs inode, its level (0 is the
// initial namespace) and the namespace it was made in. Shared and
// immutable.
type pidNS struct {
	ino    uint64
	level  int
	parent *pidNS
}

// nsCap is what is captured of a process: its pid namespace and its pid
// at each level, the initial one first. Immutable.
type nsCap struct {
	ns    *pidNS
	nspid []uint32
}

// maxNSCache bounds the pid namespaces remembered by inode; past it the
// cache starts again (captures keep theirs).
const maxNSCache = 1 << 12

// nsCache maps pid namespace inodes to their place in the tree of pid
// namespaces. An inode can be reused once its namespace is gone: an entry
// is trusted only at the level the process's NSpid gives, and an init (a
// process whose pid in its own namespace is 1, the first there) always
// has its chain walked anew.
type nsCache struct {
	mu   sync.Mutex
	byNo map[uint64]*pidNS
	inos []uint64 // ancestors' buffer
}

// chain returns the pidNS of a process read as (ino, nspid), walking its
// ancestors with sys when the cache cannot answer.
func (c *nsCache) chain(sys nsSys, pid uint32, ino uint64, nspid []uint32) (*pidNS, error) {
	level := len(nspid) - 1
	init := nspid[level] == 1 && level > 0
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.byNo[ino]; ok && n.level == level && !init {
		return n, nil
	}
	var err error
	c.inos, err = sys.ancestors(pid, c.inos[:0])
	if err != nil {
		return nil, err
	}
	if len(c.inos) != level+1 || c.inos[0] != ino {
		return nil, fmt.Errorf("pid %d: its pid namespaces changed while read (a reused pid)", pid)
	}
	if c.byNo == nil || len(c.byNo) > maxNSCache {
		c.byNo = map[uint64]*pidNS{}
	}
	var parent *pidNS
	for l := level; l >= 0; l-- {
		i := c.inos[l]
		n, ok := c.byNo[i]
		if !ok || n.level != level-l || n.parent != parent || (l == 0 && init) {
			n = &pidNS{ino: i, level: level - l, parent: parent}
			c.byNo[i] = n
		}
		parent = n
	}
	return parent, nil
}

// idMaps is a container's uid and gid maps; the zero value is identity
// (the container shares the host's user namespace).
type idMaps struct {
	uid, gid view.IDMap
}

// View is the namespaces of one registered container (a view.Namespaces), as the tracker
// learns them from its processes: it answers a pid's value in the
// container's pid namespace, and an id's through its user namespace.
// Its methods are safe for concurrent use.
//
// The container's pid namespace is that of its init: the process of the
// container (its cgroup, not a registered cgroup below it) whose pid in
// its own namespace is 1, the shallowest if several; until one is seen,
// the shallowest namespace of its processes. A container restarted in the
// same cgroup has a new init in a new namespace: the View keeps the last
// few, so that records of the earlier one's processes still translate.
// Its user namespace is its init's.
type View struct {
	t      *Tracker
	dir    string
	d      CgroupDir
	contid uint64 // the container's audit container ID, when byID
	byID   bool   // made by NewContIDView: its processes are in t.ids

	mu        sync.Mutex // guards the fields below; readers use the atomics
	initLevel int        // level of the inits' namespaces, -1 before one
	inits     []*pidNS   // namespaces of the inits seen, newest last
	provis    *pidNS     // before an init: the shallowest namespace seen
	mapsFrom  *pidNS     // the namespace whose process the maps were read from
	mapsFinal bool       // the maps read had lines, or were the host's

	nss      atomic.Pointer[[]*pidNS] // the container's pid namespaces
	maps     atomic.Pointer[idMaps]
	needMaps atomic.Bool // the maps are not read yet: a process seen again is looked at
}

// maxInits bounds the pid namespaces of inits a View keeps.
const maxInits = 8

// Dir is the registered cgroup directory the View is of ("contid N" for
// a View made by NewContIDView).
func (v *View) Dir() string { return v.dir }

// Pid returns host pid p's value in the container's pid namespace, for
// the process that had pid p at at (an event's stamp, ns since the epoch),
// or 0 when that process is not in the container's pid namespace or one
// below it (the runtime that started the container's init, a host
// process) or was not seen. A container in the host's pid namespace sees
// every pid as it is.
func (v *View) Pid(p uint32, at int64) uint32 {
	if p == 0 {
		return 0
	}
	nss := v.nss.Load()
	if nss == nil {
		return 0
	}
	if (*nss)[0].level == 0 {
		return p // the container shares the host's pid namespace: every pid is seen as it is
	}
	var c *nsCap
	if v.byID {
		c = v.t.ids.nsAt(p, at)
	} else {
		c = v.t.table.nsAt(p, at)
	}
	if c == nil {
		return 0
	}
	for n := c.ns; n != nil; n = n.parent {
		if slices.Contains(*nss, n) {
			return c.nspid[n.level]
		}
	}
	return 0
}

// UID returns host uid id as the container's user namespace maps it:
// 65534 when it is not mapped there, or when the namespace is not known
// yet (no process of the container seen).
func (v *View) UID(id uint32) uint32 {
	m := v.maps.Load()
	if m == nil {
		return view.Overflow
	}
	return m.uid.Map(id)
}

// GID is UID for group ids.
func (v *View) GID(id uint32) uint32 {
	m := v.maps.Load()
	if m == nil {
		return view.Overflow
	}
	return m.gid.Map(id)
}

// Known reports whether the View has seen a process of its container.
func (v *View) Known() bool { return v.nss.Load() != nil }

// observe takes a process of the container into the View: pid, captured
// as c, directly in the View's cgroup (own) or in one below it. sys reads
// its id maps when it gives the container's namespace.
func (v *View) observe(sys nsSys, pid uint32, c *nsCap, own bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	level := c.ns.level
	init := own && level > 0 && c.nspid[level] == 1
	switch {
	case init && (v.initLevel < 0 || level < v.initLevel):
		v.initLevel, v.inits, v.provis = level, []*pidNS{c.ns}, nil
	case init && level == v.initLevel:
		if !slices.Contains(v.inits, c.ns) {
			if len(v.inits) == maxInits {
				v.inits = v.inits[1:]
			}
			v.inits = append(slices.Clip(v.inits), c.ns)
		}
	case v.initLevel < 0 && (v.provis == nil || level < v.provis.level):
		v.provis = c.ns
	}
	cur := v.provis
	nss := []*pidNS{v.provis}
	if v.initLevel >= 0 {
		cur, nss = v.inits[len(v.inits)-1], slices.Clone(v.inits)
	}
	if old := v.nss.Load(); old == nil || !slices.Equal(*old, nss) {
		v.nss.Store(&nss)
	}
	if v.mapsFrom != cur {
		v.needMaps.Store(true)
	}
	// The maps come from a process of the namespace the View answers
	// for, read again when that namespace changes, and until they are
	// read with lines (a runtime writes them after making the namespace).
	if c.ns != cur || (v.mapsFrom == cur && v.mapsFinal) {
		return
	}
	uid, gid, userns, err := sys.idMaps(pid)
	if err != nil {
		return
	}
	var m idMaps // identity: the host's user namespace
	if userns != v.t.hostUserNS {
		u, err1 := view.ParseIDMap(uid)
		g, err2 := view.ParseIDMap(gid)
		if err1 != nil || err2 != nil {
			v.t.log.Warn("unreadable id map of a container process", "pid", pid, "cgroup", v.dir, "uid_map", err1, "gid_map", err2)
			return
		}
		m.uid, m.gid = u, g
	}
	v.maps.Store(&m)
	v.mapsFrom, v.mapsFinal = cur, m.uid.Identity() || len(m.uid.Extents()) > 0
	v.needMaps.Store(!v.mapsFinal)
}

// viewList is the Views made, and a generation that sets' memos name.
type viewList struct {
	gen   uint32
	views []*View
}

// NewView returns the View of the container whose registered cgroup
// directory is dir (as Attribute is given it), and captures the processes
// the tracker knows in it now. Close it when the container goes.
func (t *Tracker) NewView(dir string) (*View, error) {
	d, err := t.Dir(dir)
	if err != nil {
		return nil, err
	}
	v := &View{t: t, dir: dir, d: d, initLevel: -1}
	v.needMaps.Store(true)
	t.viewMu.Lock()
	old := t.views.Load()
	next := &viewList{views: []*View{v}}
	if old != nil {
		next.gen = old.gen + 1
		next.views = append(slices.Clone(old.views), v)
	}
	t.views.Store(next)
	t.viewMu.Unlock()
	// The processes already there, those captured for another View too.
	t.captureKnown(t.scanSys(), t.table.within(d))
	return v, nil
}

// captureKnown captures, for the Views, processes the tracker already knew
// when a View was made.
func (t *Tracker) captureKnown(sys nsSys, pids []uint32) {
	initsFirst(sys, pids)
	for _, pid := range pids {
		t.captureWith(sys, pid, true)
	}
}

// initsFirst orders processes captured together: inits (pid 1 in their
// own pid namespace) first, the shallowest first, then the rest as they
// were. The namespace cache walks an init's namespaces anew (an inode may
// be reused), so a process of its namespace (or one below it) captured
// before it would name an older walk of the same namespace, one its View
// does not know: it would translate to 0.
func initsFirst(sys nsSys, pids []uint32) {
	key := make(map[uint32]int, len(pids))
	for _, pid := range pids {
		key[pid] = math.MaxInt
		if n, _, err := sys.nspid(pid, nil); err == nil && len(n) > 1 && n[len(n)-1] == 1 {
			key[pid] = len(n)
		}
	}
	slices.SortStableFunc(pids, func(a, b uint32) int { return cmp.Compare(key[a], key[b]) })
}

// Close stops capturing for the View's container; what it knows stays.
func (v *View) Close() {
	t := v.t
	if v.byID {
		t.ids.closeID(v)
		return
	}
	t.viewMu.Lock()
	defer t.viewMu.Unlock()
	old := t.views.Load()
	if old == nil {
		return
	}
	i := slices.Index(old.views, v)
	if i < 0 {
		return
	}
	t.views.Store(&viewList{gen: old.gen + 1, views: slices.Delete(slices.Clone(old.views), i, i+1)})
}

// viewFor returns the View whose container process set s belongs to: the
// one with the deepest directory holding it, or nil. The answer is kept in
// the set's memo for the generation of the views.
func (vl *viewList) viewFor(s *cgset) *View {
	if m := s.vmemo.Load(); m>>32 == uint64(vl.gen) && m != 0 {
		if i := int(m & 0xffffffff); i > 0 {
			return vl.views[i-1]
		}
		return nil
	}
	idx := 0
	for i, v := range vl.views {
		if s.cg.Within(v.d) && (idx == 0 || len(v.d.Path) > len(vl.views[idx-1].d.Path)) {
			idx = i + 1
		}
	}
	s.vmemo.Store(uint64(vl.gen)<<32 | uint64(idx))
	if idx == 0 {
		return nil
	}
	return vl.views[idx-1]
}

// capture reads and keeps the namespaces of process pid, seen now, when it
// is in a View's container and they are not known yet. For Run's
// goroutine.
func (t *Tracker) capture(pid uint32) {
	if t.views.Load() == nil {
		return
	}
	if t.nsys == nil {
		t.nsys = t.scanSys()
	}
	t.captureWith(t.nsys, pid, false)
}

// scanSys returns an nsSys for one goroutine.
func (t *Tracker) scanSys() nsSys {
	if t.newNSSys != nil {
		return t.newNSSys()
	}
	return &nsReader{}
}

// captureWith is capture with sys; again says that a process captured
// already is taken into its View all the same (a View just made).
func (t *Tracker) captureWith(sys nsSys, pid uint32, again bool) {
	vl := t.views.Load()
	if vl == nil || len(vl.views) == 0 {
		return
	}
	s, c := t.table.uncaptured(pid)
	if s == nil {
		return
	}
	v := vl.viewFor(s)
	if v == nil || (c != nil && !again && !v.needMaps.Load()) {
		return
	}
	if c == nil {
		if c = t.readNS(sys, pid); c == nil {
			return
		}
		if !t.table.setCapture(pid, c) {
			return
		}
		t.captures.Add(1)
	}
	v.observe(sys, pid, c, s.cg.In(v.d))
}

var _ view.Namespaces = (*View)(nil)

// Unknown is the view of a container whose namespaces cannot be known:
// no pid is visible (0) and no id mapped (65534), so that no host value
// is shown as the container's.
var Unknown view.Namespaces = unknown{}

type unknown struct{}

func (unknown) Pid(uint32, int64) uint32 { return 0 }
func (unknown) UID(uint32) uint32        { return view.Overflow }
func (unknown) GID(uint32) uint32        { return view.Overflow }

// readNS reads what a process's copies are translated by: its NSpid and
// its pid namespaces, placed. nil when it is gone or they cannot be read.
func (t *Tracker) readNS(sys nsSys, pid uint32) *nsCap {
	nspid, ino, err := sys.nspid(pid, nil)
	if err != nil {
		return nil // gone: nothing to keep
	}
	ns, err := t.nsc.chain(sys, pid, ino, nspid)
	if err != nil {
		t.log.Debug("reading a process's pid namespaces", "pid", pid, "error", err)
		return nil
	}
	return &nsCap{ns: ns, nspid: slices.Clip(nspid)}
}
