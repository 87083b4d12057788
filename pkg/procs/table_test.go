package procs

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	cgA = "0::/tenants/a\n8:pids:/tenants/a\n"
	cgB = "0::/tenants/b\n8:pids:/tenants/b\n"
)

// world is a model of the processes of a host, for the tracker to read
// (procSys) and for tests to check its answers against: it knows the
// truth, the tracker only what it reads and is told, late.
type world struct {
	now   int64             // ns
	cg    map[uint32]string // live processes: their v2 cgroup path
	queue []procEvent       // process events not yet read by the tracker
	moves []writeEvent      // cgroup writes not yet read
	moved map[uint32]bool   // processes moved since the tracker last read
	// Processes moved by another since the tracker last read: they do not
	// exit before it reads again (see the package documentation).
	byOther map[uint32]bool
}

func (w *world) read(pid uint32) ([]byte, error) {
	p, ok := w.cg[pid]
	if !ok {
		return nil, os.ErrNotExist
	}
	return []byte("0::" + p + "\n"), nil
}

func (w *world) exiting(pid uint32) bool { _, ok := w.cg[pid]; return !ok }

func (w *world) members(dir string) ([]byte, error) {
	path := strings.TrimPrefix(dir, "/cg")
	if path == "" {
		path = "/"
	}
	var pids []int
	for pid, p := range w.cg {
		if p == path {
			pids = append(pids, int(pid))
		}
	}
	sort.Ints(pids)
	var sb strings.Builder
	for _, p := range pids {
		fmt.Fprintf(&sb, "%d\n", p)
	}
	return []byte(sb.String()), nil
}

// newWorldTracker returns a tracker reading w, with a cgroup v2 mount at
// /cg, and the processes of w seeded.
func newWorldTracker(w *world) *Tracker {
	t := &Tracker{
		log:        hclog.NewNullLogger(),
		root:       "/cg",
		mounts:     []cgroupMount{{point: "/cg", root: "/", v2: true}},
		table:      newPidTable(1<<14, int64(time.Hour)),
		sys:        w,
		clock:      func() int64 { return w.now },
		dirs:       map[string]CgroupDir{},
		unverified: map[uint32]struct{}{},
	}
	for pid := range w.cg {
		t.readProc(pid, true)
	}
	return t
}

// run is one wake-up of the tracker's Run: process events, then writes.
func (w *world) run(t *Tracker) {
	mark := w.now
	for _, ev := range w.queue {
		t.handle(ev)
	}
	t.handleWrites(w.moves)
	w.queue, w.moves = w.queue[:0], w.moves[:0]
	clear(w.moved)
	clear(w.byOther)
	t.watermark.Store(mark)
}

func (w *world) fork(parent, child uint32) {
	w.cg[child] = w.cg[parent]
	w.queue = append(w.queue, procEvent{What: procEventFork, PID: child, TGID: child, Parent: parent, Time: uint64(w.now)})
}

func (w *world) exec(pid uint32) {
	w.queue = append(w.queue, procEvent{What: procEventExec, PID: pid, TGID: pid, Time: uint64(w.now)})
}

func (w *world) exit(pid uint32) {
	delete(w.cg, pid)
	w.queue = append(w.queue, procEvent{What: procEventExit, PID: pid, TGID: pid, Time: uint64(w.now)})
}

// write is writer writing pid into the cgroup.procs of cgroup path.
func (w *world) write(writer, pid uint32, path string) {
	if w.moved == nil {
		w.moved, w.byOther = map[uint32]bool{}, map[uint32]bool{}
	}
	if w.moved[pid] {
		// Moved twice between two reads of the tracker: out and back is
		// not seen (see the package documentation); the model leaves it out.
		path = w.cg[pid]
	}
	w.moved[pid] = true
	if writer != pid {
		w.byOther[pid] = true
	}
	w.cg[pid] = path
	w.moves = append(w.moves, writeEvent{writer, "/cg" + strings.TrimSuffix(path, "/") + "/cgroup.procs"})
}

// stamp is how audit stamps time: the coarse clock (4ms ticks), cut to the
// millisecond.
func stamp(ns int64) int64 {
	const tick = 4e6
	return ns / tick * tick / 1e6 * 1e6
}

// Registered containers of the model, deepest first: /a/b inside /a, and
// /c. Everything else is the host's.
var worldDirs = []string{"/cg/a/b", "/cg/a", "/cg/c"}

func tenantOf(path string) int {
	for i, d := range worldDirs {
		d = strings.TrimPrefix(d, "/cg")
		if path == d || strings.HasPrefix(path, d+"/") {
			return i
		}
	}
	return -1
}

// encloses reports whether the tenant got (an index of worldDirs, or -1)
// may see the records of the tenant want: it is want or a container
// enclosing want, or nobody.
func encloses(got, want int) bool {
	if got < 0 || got == want {
		return true
	}
	if want < 0 {
		return false
	}
	g, w := strings.TrimPrefix(worldDirs[got], "/cg"), strings.TrimPrefix(worldDirs[want], "/cg")
	return strings.HasPrefix(w, g+"/")
}

func (w *world) attribute(t *Tracker, pid uint32, at int64) int {
	return t.Attribute(pid, 0, stamp(at), worldDirs)
}

// TestTrackerOrchestratorMoveAfterExec is runc's case: the child execs
// (runc init) in the runtime's cgroup, the parent moves it into the
// container's, then it execs the container's program. The tracker reads
// the first exec only after the move. The first execve is the host's, the
// second the container's.
func TestTrackerOrchestratorMoveAfterExec(t *testing.T) {
	w := &world{now: 1e12, cg: map[uint32]string{10: "/runtime"}}
	tr := newWorldTracker(w)
	w.now += 5e6
	w.fork(10, 11)
	w.run(tr)
	w.now += 1e6
	w.exec(11) // runc init
	execInit := w.now
	w.now += 30e6
	w.write(10, 11, "/a") // the parent moves it
	w.now += 2e6
	w.run(tr) // reads the exec now: already in /a
	w.now += 30e6
	w.exec(11) // the container's program
	execProg := w.now
	w.now += 1e6
	w.run(tr)
	w.now += 200e6
	w.run(tr)
	if got := w.attribute(tr, 11, execInit); got != -1 {
		t.Errorf("runc init's execve, before the move: attributed to %d, want the host (-1)", got)
	}
	if got := w.attribute(tr, 11, execProg); got != 1 {
		t.Errorf("the container program's execve, after the move: attributed to %d, want /a (1)", got)
	}
}

// TestTrackerSelfMove is `sh -c 'echo $$ > cgroup.procs; exec prog'`, with
// prog read only once gone: its execve is the container's.
func TestTrackerSelfMove(t *testing.T) {
	w := &world{now: 1e12, cg: map[uint32]string{10: "/"}}
	tr := newWorldTracker(w)
	w.now += 3e6
	w.fork(10, 20)
	w.exec(20) // sh
	before := w.now - 1e6
	w.run(tr)
	w.now += 1e6
	w.write(20, 20, "/c")
	w.now += 300e3
	w.exec(20) // prog
	execProg := w.now
	w.now += 200e3
	w.run(tr)
	w.now += 1e6
	w.exit(20)
	w.run(tr)
	if got := w.attribute(tr, 20, execProg); got != 2 {
		t.Errorf("prog's execve: attributed to %d, want /c (2); stats %+v", got, tr.Stats())
	}
	if got := w.attribute(tr, 20, before-Slack); got != -1 {
		t.Errorf("the shell's records before its exec: attributed to %d, want the host", got)
	}
}

// TestTrackerBackToBackHelpers: two helpers each write another process's
// pid into a cgroup.procs and exit, both before the tracker reads the
// writes. Neither helper is the container's.
func TestTrackerBackToBackHelpers(t *testing.T) {
	w := &world{now: 1e12, cg: map[uint32]string{10: "/", 30: "/", 31: "/"}}
	tr := newWorldTracker(w)
	var helperExec [2]int64
	for i, target := range []uint32{30, 31} {
		h := uint32(40 + i)
		w.now += 1e6
		w.fork(10, h)
		w.exec(h)
		helperExec[i] = w.now
		w.now += 500e3
		w.write(h, target, "/a")
		w.exit(h)
	}
	w.now += 1e6
	w.run(tr)
	w.now += 100e6
	w.run(tr)
	for i := range 2 {
		if got := w.attribute(tr, uint32(40+i), helperExec[i]); got != -1 {
			t.Errorf("helper %d's execve: attributed to %d, want the host", i, got)
		}
		if got := w.attribute(tr, uint32(30+i), w.now); got != 1 {
			t.Errorf("the process helper %d moved: attributed to %d, want /a (1)", i, got)
		}
	}
}

// TestTrackerPidReuse: a pid exits in one container and is reused at once
// by a process in another; each one's records go to its own.
func TestTrackerPidReuse(t *testing.T) {
	w := &world{now: 1e12, cg: map[uint32]string{10: "/a", 11: "/c"}}
	tr := newWorldTracker(w)
	w.now += 1e6
	w.fork(10, 50)
	w.now += 1e6
	first := w.now
	w.run(tr)
	w.now += 1e6
	w.exit(50)
	w.now += 100e6
	w.fork(11, 50)
	second := w.now + 1e6
	w.run(tr)
	w.now += 100e6
	w.run(tr)
	if got := w.attribute(tr, 50, first); got != 1 {
		t.Errorf("the first process: attributed to %d, want /a (1)", got)
	}
	if got := w.attribute(tr, 50, second); got != 2 {
		t.Errorf("the second process with the same pid: attributed to %d, want /c (2)", got)
	}
	// And again for the first, after the second was asked: nothing is
	// remembered by pid.
	if got := w.attribute(tr, 50, first); got != 1 {
		t.Errorf("the first process, asked again: attributed to %d, want /a (1)", got)
	}
}

// TestTrackerProperty runs random schedules of forks, execs, exits, pid
// reuse, self-moves, orchestrator moves and helpers against the tracker,
// read late by random amounts, and checks every audited event against the
// model: the tracker may answer the process's container, one enclosing it,
// or nobody, never another one. (A process that moves itself is its new
// container's from its last exec before the move, by design.) It reports
// how often the answer was exactly right.
func TestTrackerProperty(t *testing.T) {
	cgroups := []string{"/", "/runtime", "/a", "/a/b", "/a/b/x", "/c"}
	seeds := 300
	if testing.Short() {
		seeds = 50
	}
	if n, err := strconv.Atoi(os.Getenv("AUDITD_NS_SEEDS")); err == nil {
		seeds = n
	}
	var exact, total int
	for seed := range seeds {
		r := rand.New(rand.NewPCG(uint64(seed), 17))
		w := &world{now: 1e12, cg: map[uint32]string{1: "/"}}
		tr := newWorldTracker(w)
		type event struct {
			pid     uint32
			at      int64
			allowed map[string]bool // cgroups it may be attributed to
		}
		var events []event
		lastExec := map[uint32]int64{1: 0}
		live := func() []uint32 {
			var ps []uint32
			for p := range w.cg {
				ps = append(ps, p)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
			return ps
		}
		freePid := func() (uint32, bool) {
			for range 20 {
				p := uint32(2 + r.IntN(30)) // a small pid space: reuse is frequent
				// Not the pid of a write not yet read: fanotify names the
				// writer by number (see handleWrite).
				pending := slices.ContainsFunc(w.moves, func(m writeEvent) bool { return m.writer == p })
				if _, ok := w.cg[p]; !ok && !pending {
					return p, true
				}
			}
			return 0, false
		}
		var trace []string
		logf := func(format string, a ...any) {
			trace = append(trace, fmt.Sprintf("%d ", w.now)+fmt.Sprintf(format, a...))
		}
		audit := func(pid uint32) {
			logf("audit %d in %s", pid, w.cg[pid])
			events = append(events, event{pid, w.now, map[string]bool{w.cg[pid]: true}})
		}
		// A process that writes to the cgroup.procs of the cgroup it is
		// then in is taken to have moved itself there, and to be its
		// container's from its last exec (or fork) on, by design.
		selfMove := func(p uint32, to string) {
			if to != w.cg[p] {
				return
			}
			for i := range events {
				if e := &events[i]; e.pid == p && e.at >= lastExec[p]-Slack {
					e.allowed[to] = true
				}
			}
		}
		for range 400 {
			w.now += int64(50e3 + r.IntN(3e6))
			ps := live()
			p := ps[r.IntN(len(ps))]
			switch k := r.IntN(100); {
			case k < 20:
				if c, ok := freePid(); ok {
					logf("fork %d -> %d", p, c)
					w.fork(p, c)
					lastExec[c] = w.now
					audit(c)
				}
			case k < 35:
				logf("exec %d", p)
				w.exec(p)
				lastExec[p] = w.now
				audit(p)
			case k < 45:
				if p != 1 && !w.byOther[p] {
					logf("exit %d", p)
					w.exit(p)
				}
			case k < 52: // p moves itself
				to := cgroups[r.IntN(len(cgroups))]
				if w.moved[p] {
					to = w.cg[p]
				}
				logf("self-move %d to %s", p, to)
				w.write(p, p, to)
				selfMove(p, to)
				audit(p)
			case k < 60: // p moves another process (or itself)
				q := ps[r.IntN(len(ps))]
				to := cgroups[r.IntN(len(cgroups))]
				logf("%d moves %d to %s", p, q, to)
				w.write(p, q, to)
				selfMove(p, to)
			case k < 65: // a helper forked by p moves another and exits
				if h, ok := freePid(); ok {
					q := ps[r.IntN(len(ps))]
					w.fork(p, h)
					w.now += 100e3
					w.exec(h)
					lastExec[h] = w.now
					audit(h)
					w.now += 300e3
					to := cgroups[r.IntN(len(cgroups))]
					logf("helper %d (of %d) moves %d to %s", h, p, q, to)
					w.write(h, q, to)
					selfMove(h, to)
					w.exit(h)
				}
			case k < 85:
				audit(p)
			default:
				logf("run")
				w.run(tr)
			}
		}
		w.now += 100e6
		w.run(tr)
		for _, e := range events {
			got := w.attribute(tr, e.pid, e.at)
			ok := false
			for cg := range e.allowed {
				ok = ok || encloses(got, tenantOf(cg))
			}
			if !ok {
				for _, l := range trace {
					t.Log(l)
				}
				for _, c := range tr.table.at(e.pid, stamp(e.at), nil) {
					if c != nil {
						t.Logf("candidate %s", c.cg.V2)
					}
				}
				tr.table.mu.RLock()
				for p := tr.table.pids[e.pid]; p != nil; p = p.older {
					dumpProc(t, p, 0)
				}
				tr.table.mu.RUnlock()
				t.Fatalf("seed %d: pid %d at %d (stamp %d): attributed to %d, but it was in %v",
					seed, e.pid, e.at, stamp(e.at), got, e.allowed)
			}
			total++
			for cg := range e.allowed {
				if got == tenantOf(cg) {
					exact++
					break
				}
			}
		}
	}
	t.Logf("%d events, %d (%.1f%%) attributed exactly, the others to an enclosing container or the host", total, exact, 100*float64(exact)/float64(total))
}

func TestPidTableEviction(t *testing.T) {
	tb := newPidTable(3, 1000)
	for pid := uint32(1); pid <= 3; pid++ {
		tb.observe(pid, []byte(cgA), int64(pid), false, false)
	}
	tb.exit(1, 10)
	tb.observe(4, []byte(cgB), 11, false, false) // evicts 1, the only exited one
	if _, ok := tb.current(1); ok {
		t.Error("the exited process was not evicted")
	}
	tb.observe(5, []byte(cgB), 12, false, false) // full of live ones: not stored
	if _, ok := tb.current(5); ok {
		t.Error("stored past the limit")
	}
	if n, _, sets, ev, dr := tb.counts(); n != 3 || sets != 2 || ev != 1 || dr != 1 {
		t.Errorf("counts: %d entries, %d sets, %d evicted, %d dropped", n, sets, ev, dr)
	}
}

func TestPidTableRetain(t *testing.T) {
	tb := newPidTable(100, 30)
	tb.observe(1, []byte(cgA), 1, true, false)
	if !tb.fork(2, 1, 5) {
		t.Fatal("fork of a known parent")
	}
	tb.exit(2, 10)
	if c, ok := tb.current(2); !ok || c.V2 != "/tenants/a" {
		t.Errorf("exited process: %+v, %v", c, ok)
	}
	tb.expire(41)
	if _, ok := tb.current(2); ok {
		t.Error("kept past retain")
	}
	if n, ex, sets, _, _ := tb.counts(); n != 1 || ex != 0 || sets != 1 {
		t.Errorf("counts: %d %d %d, want 1 0 1", n, ex, sets)
	}
}

func TestPidTableSweep(t *testing.T) {
	tb := newPidTable(10, 5)
	tb.observe(1, []byte(cgA), 1, true, false)
	tb.observe(2, []byte(cgA), 1, true, false)
	tb.sweep(map[uint32]struct{}{1: {}}, 2)
	tb.expire(8)
	if _, ok := tb.current(2); ok {
		t.Error("a process missing from /proc was not let go")
	}
	if _, ok := tb.current(1); !ok {
		t.Error("a live process was let go")
	}
}

func TestPidTableBadContent(t *testing.T) {
	tb := newPidTable(10, 5)
	if _, err := tb.observe(1, []byte("garbage"), 1, false, false); err == nil {
		t.Error("garbage accepted")
	}
	if n, _, sets, _, _ := tb.counts(); n != 0 || sets != 0 {
		t.Errorf("counts after garbage: %d %d", n, sets)
	}
}

func TestPidTableFIFOBounded(t *testing.T) {
	tb := newPidTable(16, 1<<40)
	for i := range 10000 {
		pid := uint32(i%8 + 1)
		tb.observe(pid, []byte(cgA), int64(i)+1, false, false)
		tb.exit(pid, int64(i)+1)
	}
	if len(tb.exits)-tb.head > 32 || cap(tb.exits) > 4096 {
		t.Errorf("exit FIFO: %d live items, capacity %d", len(tb.exits)-tb.head, cap(tb.exits))
	}
	if n, _, _, _, _ := tb.counts(); n > 16 {
		t.Errorf("%d processes kept, max 16", n)
	}
}

var errBench = errors.New("bench")

func newBenchTracker(b *testing.B) *Tracker {
	w := &world{now: 1e12, cg: map[uint32]string{}}
	for pid := uint32(1); pid <= 10000; pid++ {
		w.cg[pid] = "/a"
		if pid%2 == 0 {
			w.cg[pid] = "/c"
		}
	}
	return newWorldTracker(w)
}

func BenchmarkAttribute(b *testing.B) {
	tr := newBenchTracker(b)
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		if tr.Attribute(uint32(1+i%10000), 0, 1e12, worldDirs) == 1 {
			n++
		}
	}
	if n == 0 {
		b.Fatal(errBench, "no hit within /a")
	}
}

func BenchmarkWithinV1(b *testing.B) {
	c, _ := parseProcCgroup([]byte(hybridCgroup))
	d := CgroupDir{Hierarchy: 8, Path: "/tenants"}
	b.ReportAllocs()
	for b.Loop() {
		if !c.Within(d) {
			b.Fatal("not within")
		}
	}
}

func dumpProc(t *testing.T, p *proc, depth int) {
	if p == nil || depth > 6 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%*sproc start %d exited %d:", depth*2, "", p.start, p.exited)
	for _, sg := range p.segs {
		name := "inherited"
		if sg.set != nil {
			name = sg.set.cg.V2
		}
		fmt.Fprintf(&b, " [%s lo %d hi %d obs %d seen %d]", name, sg.lo, sg.hi, sg.obs, sg.seen)
	}
	t.Log(b.String())
	dumpProc(t, p.parent, depth+1)
}
