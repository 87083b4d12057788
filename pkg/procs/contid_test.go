package procs

import (
	"errors"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// idWorld is a model of processes' audit container IDs. It lists the
// highest pids first: a container's later processes before its init.
type idWorld map[uint32]uint64

func (w idWorld) pids() []uint32 {
	out := make([]uint32, 0, len(w))
	for p := range w {
		out = append(out, p)
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out
}

func (w idWorld) contid(pid uint32) (uint64, error) {
	c, ok := w[pid]
	if !ok {
		return 0, errors.New("gone")
	}
	return c, nil
}

// idTracker is a contid tracker (Options.ContID) over models.
func idTracker(w *nsWorld, ids idWorld, hostUser uint64) *Tracker {
	return &Tracker{log: hclog.NewNullLogger(), table: newPidTable(1, 1e12), ids: newIDTable(1<<10, 1e12),
		hostUserNS: hostUser, newNSSys: func() nsSys { return w }, idSys: ids}
}

func newNSWorld() *nsWorld {
	return &nsWorld{pids: map[uint32][]uint32{}, chain: map[uint32][]uint64{}, userns: map[uint32]uint64{}, uidMap: map[uint32]string{}}
}

// TestContIDSetThenForks: a runtime process (host namespaces) is given
// the contid, then forks the container's init (new pid and user
// namespaces), which forks a child: both are followed, translated, and
// kept after they exit; processes of other containers are not followed.
func TestContIDSetThenForks(t *testing.T) {
	w := newNSWorld()
	const host, hostUser = 1000, 2000
	add := func(pid uint32, nspid []uint32, chain []uint64, user uint64, uidMap string) {
		w.pids[pid], w.chain[pid], w.userns[pid], w.uidMap[pid] = nspid, chain, user, uidMap
	}
	tr := idTracker(w, idWorld{}, hostUser)
	v, err := tr.NewContIDView(42, nil)
	if err != nil {
		t.Fatal(err)
	}
	add(100, []uint32{100}, []uint64{host}, hostUser, "0 0 4294967295")
	tr.SetContID(100, 42, 10)
	// Another container's processes: a set to a contid without a View,
	// and its forks, cost no entry.
	add(200, []uint32{200, 1}, []uint64{3100, host}, 4100, "0 200000 65536")
	tr.SetContID(200, 7, 11)
	tr.idFork(201, 200, 12)
	add(101, []uint32{101, 1}, []uint64{3001, host}, 4001, "0 100000 65536")
	tr.idFork(101, 100, 20)
	add(102, []uint32{102, 2}, []uint64{3001, host}, 4001, "0 100000 65536")
	tr.idFork(102, 101, 30)
	for pid, want := range map[uint32]uint32{100: 0, 101: 1, 102: 2, 200: 0, 201: 0, 0: 0} {
		if got := v.Pid(pid, 35); got != want {
			t.Errorf("Pid(%d) = %d, want %d", pid, got, want)
		}
	}
	if got := v.UID(100000); got != 0 {
		t.Errorf("UID(100000) = %d, want 0", got)
	}
	if got := v.GID(99); got != 65534 {
		t.Errorf("GID(99) = %d, want 65534 (unmapped)", got)
	}
	if n := tr.ids.n; n != 3 {
		t.Errorf("followed: %d processes, want 3 (not the other container's)", n)
	}
	// Exits: the history answers for records stamped before them; a
	// reused pid (an unfollowed parent) is not the container's.
	tr.idExit(102, 40)
	tr.idExit(101, 41)
	delete(w.pids, 102)
	delete(w.pids, 101)
	if got := v.Pid(102, 35); got != 2 {
		t.Errorf("after its exit: Pid(102) at 35 = %d, want 2", got)
	}
	if got := v.Pid(101, 35); got != 1 {
		t.Errorf("after its exit: Pid(101) at 35 = %d, want 1", got)
	}
	tr.idFork(102, 500, 100*Slack)
	if got := v.Pid(102, 101*Slack); got != 0 {
		t.Errorf("a reused pid: Pid(102) = %d, want 0", got)
	}
	if got := tr.Stats().Views; got != 1 {
		t.Errorf("Stats().Views = %d, want 1", got)
	}
	v.Close()
	tr.idFork(103, 100, 110*Slack)
	if tr.ids.live(103) == nil {
		t.Errorf("a closed View's processes are not followed: its replacement needs them")
	}
}

// TestContIDForkBeforeSetRead: the init forks before the daemon reads
// the op=set record of its parent: the ring of recent forks gives it;
// a fork by an earlier process of the same pid, before the set, does not.
func TestContIDForkBeforeSetRead(t *testing.T) {
	w := newNSWorld()
	const host, hostUser = 1000, 2000
	tr := idTracker(w, idWorld{}, hostUser)
	v, _ := tr.NewContIDView(43, nil)
	w.pids[301], w.chain[301], w.userns[301], w.uidMap[301] = []uint32{301, 1}, []uint64{3001, host}, 4001, "0 100000 65536"
	w.pids[299], w.chain[299], w.userns[299] = []uint32{299}, []uint64{host}, hostUser
	w.pids[300], w.chain[300], w.userns[300] = []uint32{300}, []uint64{host}, hostUser
	tr.idFork(299, 300, 5*Slack) // an earlier process of pid 300
	tr.idFork(301, 300, 20*Slack)
	tr.SetContID(300, 43, 10*Slack)
	if got := v.Pid(301, 21*Slack); got != 1 {
		t.Errorf("forked before the set was read: Pid(301) = %d, want 1", got)
	}
	if tr.ids.live(299) != nil {
		t.Errorf("a fork before the set was followed")
	}
}

// TestContIDRegisteredAfterSet: the container is registered after its
// processes were given the contid: the scan when the View is made finds
// them (and those of a container nested in it), not others, whatever
// the order /proc lists them in.
func TestContIDRegisteredAfterSet(t *testing.T) {
	w := newNSWorld()
	const host, hostUser = 1000, 2000
	ids := idWorld{400: 44, 401: 44, 402: 45, 403: 9}
	w.pids[400], w.chain[400], w.userns[400], w.uidMap[400] = []uint32{400, 1}, []uint64{3001, host}, 4001, "0 100000 65536"
	w.pids[401], w.chain[401], w.userns[401], w.uidMap[401] = []uint32{401, 5}, []uint64{3001, host}, 4001, "0 100000 65536"
	w.pids[402], w.chain[402], w.userns[402], w.uidMap[402] = []uint32{402, 6, 1}, []uint64{3002, 3001, host}, 4002, "0 0 1"
	w.pids[403], w.chain[403], w.userns[403], w.uidMap[403] = []uint32{403, 1}, []uint64{3100, host}, 4100, "0 300000 65536"
	tr := idTracker(w, ids, hostUser)
	v, _ := tr.NewContIDView(44, func(c uint64) bool { return c == 45 })
	for pid, want := range map[uint32]uint32{400: 1, 401: 5, 402: 6, 403: 0} {
		if got := v.Pid(pid, 10); got != want {
			t.Errorf("Pid(%d) = %d, want %d", pid, got, want)
		}
	}
	if got := v.UID(100007); got != 7 {
		t.Errorf("UID(100007) = %d, want 7: the init's map, not the nested container's", got)
	}
	// Its child, forked after: followed.
	w.pids[404], w.chain[404], w.userns[404] = []uint32{404, 9}, []uint64{3001, host}, 4001
	tr.idFork(404, 401, 20)
	if got := v.Pid(404, 25); got != 9 {
		t.Errorf("Pid(404) = %d, want 9", got)
	}
}

// TestContIDRetain: exited processes go after retain, and when the table
// is full the oldest exited goes first.
func TestContIDRetain(t *testing.T) {
	w := newNSWorld()
	tr := idTracker(w, idWorld{}, 2000)
	tr.ids = newIDTable(4, 100)
	tr.NewContIDView(1, nil)
	for p := uint32(10); p < 14; p++ {
		w.pids[p], w.chain[p] = []uint32{p}, []uint64{1000}
	}
	tr.SetContID(10, 1, 0)
	tr.idFork(11, 10, 1)
	tr.idFork(12, 10, 2)
	tr.idFork(13, 10, 3)
	tr.idExit(11, 5)
	tr.idFork(14, 10, 6) // full: 11 goes
	if tr.ids.pids[11] != nil || tr.ids.live(14) == nil {
		t.Errorf("full table: 11 kept %v, 14 followed %v", tr.ids.pids[11] != nil, tr.ids.live(14) != nil)
	}
	tr.idExit(12, 10)
	tr.idExit(13, 200) // 12 exited more than retain before
	if tr.ids.pids[12] != nil || tr.ids.pids[13] == nil || tr.ids.n != 3 {
		t.Errorf("retain: 12 kept %v, 13 kept %v, n %d", tr.ids.pids[12] != nil, tr.ids.pids[13] != nil, tr.ids.n)
	}
}
