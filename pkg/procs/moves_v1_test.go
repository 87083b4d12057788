package procs

import (
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// v1Sys is a host with a cgroup v1 pids hierarchy: an exiting process (and
// a zombie, readable until reaped) reads as in the root of it, as the
// kernel shows one (proc_cgroup_show with PF_EXITING).
type v1Sys struct {
	cg    map[uint32]string // pids path of each process not reaped
	dying map[uint32]bool   // exiting, or zombies
}

func (s *v1Sys) read(pid uint32) ([]byte, error) {
	p, ok := s.cg[pid]
	if !ok {
		return nil, os.ErrNotExist
	}
	if s.dying[pid] {
		p = "/"
	}
	return []byte("8:pids:" + p + "\n0::/\n"), nil
}

func (s *v1Sys) exiting(pid uint32) bool { _, ok := s.cg[pid]; return !ok || s.dying[pid] }

func (s *v1Sys) members(dir string) ([]byte, error) { return nil, nil } // a zombie is not listed

// TestTrackerSelfMoveReadExitingV1 is `sh -c 'echo $$ > t/cgroup.procs &&
// exec /bin/true'` in a v1 hierarchy, with the exec of true and the write
// read only once true is exiting (not reaped yet): every read shows the
// root. The tracker cannot know the process went to t; it must say so
// (ExecMissed, Gone), must not take the blind reads for sightings outside
// t (true's execve is then possibly t's), and must not take the zombie
// read at the write for a new process.
func TestTrackerSelfMoveReadExitingV1(t *testing.T) {
	sys := &v1Sys{cg: map[uint32]string{10: "/"}, dying: map[uint32]bool{}}
	now := int64(1e12)
	tr := &Tracker{
		log:        hclog.NewNullLogger(),
		mounts:     []cgroupMount{{point: "/cg1", root: "/", opts: []string{"rw", "pids"}}},
		self:       Cgroups{V1: []CgroupV1{{Hierarchy: 8, Controllers: "pids", Path: "/"}}},
		table:      newPidTable(1<<10, int64(time.Hour)),
		moveFd:     -1,
		sys:        sys,
		clock:      func() int64 { return now },
		dirs:       map[string]CgroupDir{},
		unverified: map[uint32]struct{}{},
	}
	tr.readProc(10, true)
	ev := func(what uint32, pid uint32) procEvent {
		return procEvent{What: what, PID: pid, TGID: pid, Parent: 10, Time: uint64(now)}
	}
	now += 1e6
	sys.cg[20] = "/"
	tr.handle(ev(procEventFork, 20))
	tr.handle(ev(procEventExec, 20)) // sh, read at once
	tr.watermark.Store(now)
	now += 1e6
	sys.cg[20] = "/t" // echo $$ > t/cgroup.procs
	now += 100e3
	execTrue := now
	queue := []procEvent{ev(procEventExec, 20)}
	now += 100e3
	sys.dying[20] = true // true exits; a zombie until reaped
	queue = append(queue, ev(procEventExit, 20))
	now += 20e6 // the tracker wakes up late
	for _, e := range queue {
		tr.handle(e)
	}
	tr.handleWrites([]writeEvent{{20, "/cg1/t/cgroup.procs"}})
	now += 20e6
	tr.handleWrites(nil)

	d, err := tr.resolve("/cg1/t")
	if err != nil {
		t.Fatal(err)
	}
	s := tr.Stats()
	if c, ok := tr.Current(20); !ok || !c.Within(d) {
		// Not placed: legitimate only when counted.
		if s.ExecMissed == 0 || s.Gone == 0 {
			t.Errorf("Current(20) = %v, %v: not placed in %s, and not counted: stats %+v", c, ok, d.Path, s)
		}
	}
	if _, live := tr.table.live(20); live {
		t.Errorf("the zombie read at the write made a new live process of pid 20 after its exit")
	}
	var buf [4]*cgset
	cands := tr.table.at(20, stamp(execTrue), buf[:0])
	in := false
	for _, c := range cands {
		in = in || (c != nil && c.cg.Within(d))
	}
	if !in {
		t.Errorf("true's execve: the history has it only in %d places none in %s (the blind reads were taken for sightings outside)", len(cands), d.Path)
	}
}

func TestAllV1Roots(t *testing.T) {
	for in, want := range map[string]bool{
		"9:name=systemd:/\n8:pids:/\n0::/x\n": true,
		"8:pids:/\n":                          true,
		"8:pids:/t\n0::/\n":                   false,
		"9:name=systemd:/\n8:pids:/t\n0::/\n": false,
		"0::/\n":                              false, // no v1 hierarchy
		"":                                    false,
		"garbage\n":                           false,
	} {
		if got := allV1Roots([]byte(in)); got != want {
			t.Errorf("allV1Roots(%q) = %v, want %v", in, got, want)
		}
	}
}
