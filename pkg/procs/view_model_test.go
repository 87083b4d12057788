package procs

import (
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// nsWorld is a model of processes' namespaces, for a View to read.
type nsWorld struct {
	pids   map[uint32][]uint32
	chain  map[uint32][]uint64 // pid namespaces, own first, up to the initial
	userns map[uint32]uint64
	uidMap map[uint32]string
}

func (w *nsWorld) nspid(pid uint32, out []uint32) ([]uint32, uint64, error) {
	n, ok := w.pids[pid]
	if !ok {
		return out, 0, errors.New("gone")
	}
	return append(out, n...), w.chain[pid][0], nil
}

func (w *nsWorld) ancestors(pid uint32, out []uint64) ([]uint64, error) {
	c, ok := w.chain[pid]
	if !ok {
		return out, errors.New("gone")
	}
	return append(out, c...), nil
}

func (w *nsWorld) idMaps(pid uint32) ([]byte, []byte, uint64, error) {
	m := w.uidMap[pid]
	return []byte(m), []byte(m), w.userns[pid], nil
}

// TestViewModel: a container whose runtime process (host pid namespace)
// is seen first, then its init, a nested pid namespace inside it, and a
// sibling container's process; an inode reused by a new namespace; a map
// written after the init was first read.
func TestViewModel(t *testing.T) {
	w := &nsWorld{pids: map[uint32][]uint32{}, chain: map[uint32][]uint64{}, userns: map[uint32]uint64{}, uidMap: map[uint32]string{}}
	const host, hostUser = 1000, 2000
	add := func(pid uint32, nspid []uint32, chain []uint64, user uint64, uidMap string) {
		w.pids[pid], w.chain[pid], w.userns[pid], w.uidMap[pid] = nspid, chain, user, uidMap
	}
	tr := &Tracker{log: hclog.NewNullLogger(), table: newPidTable(1<<10, 1e12), hostUserNS: hostUser,
		newNSSys: func() nsSys { return w }}
	d := CgroupDir{Dir: "/cg/a", V2: true, Path: "/a"}
	v := &View{t: tr, dir: "/cg/a", d: d, initLevel: -1}
	v.needMaps.Store(true)
	tr.views.Store(&viewList{gen: 1, views: []*View{v}})
	seen := func(pid uint32, cg string) {
		tr.table.observe(pid, []byte("0::"+cg+"\n"), 10, true, false)
		tr.captureWith(w, pid, false)
	}

	// The runtime's process, in the container's cgroup but the host's
	// namespaces: before an init, the container is taken to see host pids.
	add(500, []uint32{500}, []uint64{host}, hostUser, "0 0 4294967295")
	seen(500, "/a")
	if got := v.Pid(77, 20); got != 77 {
		t.Errorf("before an init: Pid(77) = %d, want 77", got)
	}
	// The init: pid 1 in namespace 3001 (below the host's), in a user
	// namespace whose map is not written yet.
	add(501, []uint32{501, 1}, []uint64{3001, host}, 4001, "")
	seen(501, "/a")
	if got := v.UID(100000); got != 65534 {
		t.Errorf("map not written: UID(100000) = %d, want 65534", got)
	}
	w.uidMap[501] = "0 100000 65536"
	tr.captureWith(w, 501, false) // seen again (its exec): the map is read again
	if got := v.UID(100007); got != 7 {
		t.Errorf("map written: UID(100007) = %d, want 7", got)
	}
	// A child, and a process in a pid namespace nested in the container's
	// (in a cgroup below: still the container's).
	add(502, []uint32{502, 2}, []uint64{3001, host}, 4001, "")
	seen(502, "/a")
	add(503, []uint32{503, 3, 1}, []uint64{3002, 3001, host}, 4001, "")
	seen(503, "/a/inner")
	// A sibling container's process, not a View's cgroup: not captured.
	add(600, []uint32{600, 1}, []uint64{3100, host}, 4100, "0 200000 65536")
	seen(600, "/b")
	for pid, want := range map[uint32]uint32{500: 0, 501: 1, 502: 2, 503: 3, 600: 0, 77: 0, 0: 0} {
		if got := v.Pid(pid, 20); got != want {
			t.Errorf("Pid(%d) = %d, want %d", pid, got, want)
		}
	}
	// The container restarts in its cgroup: a new init in namespace 3003.
	// The old processes' records still translate; the new map is read.
	add(700, []uint32{700, 1}, []uint64{3003, host}, 4003, "0 300000 65536")
	seen(700, "/a")
	if v.Pid(502, 20) != 2 || v.Pid(700, 20) != 1 || v.UID(300001) != 1 {
		t.Errorf("after a restart: Pid(502) = %d, Pid(700) = %d, UID(300001) = %d", v.Pid(502, 20), v.Pid(700, 20), v.UID(300001))
	}
	// Inode 3002 (the nested namespace) is reused after it is gone, by a
	// namespace of a sibling container at level 1: the cache must not
	// take it for the nested one below the container's.
	add(800, []uint32{800, 1}, []uint64{3002, host}, 4100, "")
	tr.table.observe(800, []byte("0::/a\n"), 10, true, false)
	tr.captureWith(w, 800, false)
	if c := tr.table.nsAt(800, 20); c == nil || c.ns.level != 1 || c.ns.parent == nil || c.ns.parent.ino != host {
		t.Fatalf("a reused inode: %+v", c)
	}
	if c := tr.table.nsAt(503, 20); c.ns.level != 2 || c.ns.parent.ino != 3001 {
		t.Errorf("the earlier process's namespace changed: %+v", c.ns)
	}
	if got := tr.Stats().Captures; got != 6 {
		t.Errorf("captures: %d, want 6", got)
	}
	if nss := *v.nss.Load(); !slices.ContainsFunc(nss, func(n *pidNS) bool { return n.ino == 3001 }) {
		t.Errorf("the first init's namespace was forgotten: %v", nss)
	}
}

// TestCaptureKnownInitsFirst: a container already running when its View is
// made, its processes known to the tracker (listed here child first, as a
// map's order may give them): every one translates, the init's child too.
func TestCaptureKnownInitsFirst(t *testing.T) {
	w := &nsWorld{pids: map[uint32][]uint32{}, chain: map[uint32][]uint64{}, userns: map[uint32]uint64{}, uidMap: map[uint32]string{}}
	const host, hostUser = 1000, 2000
	tr := &Tracker{log: hclog.NewNullLogger(), table: newPidTable(1<<10, 1e12), hostUserNS: hostUser,
		newNSSys: func() nsSys { return w }}
	procs := []struct {
		pid   uint32
		nspid []uint32
		chain []uint64
		cg    string
	}{
		{503, []uint32{503, 3, 2}, []uint64{3002, 3001, host}, "/a/inner"}, // in a nested pid namespace
		{502, []uint32{502, 2}, []uint64{3001, host}, "/a"},
		{504, []uint32{504, 4, 1}, []uint64{3002, 3001, host}, "/a/inner"}, // the nested namespace's init
		{501, []uint32{501, 1}, []uint64{3001, host}, "/a"},                // the container's init
	}
	var pids []uint32
	for _, p := range procs {
		w.pids[p.pid], w.chain[p.pid], w.userns[p.pid], w.uidMap[p.pid] = p.nspid, p.chain, 4001, "0 100000 65536"
		tr.table.observe(p.pid, []byte("0::"+p.cg+"\n"), 10, true, false)
		pids = append(pids, p.pid)
	}
	v := &View{t: tr, dir: "/cg/a", d: CgroupDir{Dir: "/cg/a", V2: true, Path: "/a"}, initLevel: -1}
	v.needMaps.Store(true)
	tr.views.Store(&viewList{gen: 1, views: []*View{v}})
	tr.captureKnown(w, pids)
	for pid, want := range map[uint32]uint32{501: 1, 502: 2, 503: 3, 504: 4} {
		if got := v.Pid(pid, 20); got != want {
			t.Errorf("Pid(%d) = %d, want %d", pid, got, want)
		}
	}
	if got := pids[:2]; got[0] != 501 || got[1] != 504 {
		t.Errorf("captured in the order %v, want the inits 501 then 504 first", pids)
	}
}
