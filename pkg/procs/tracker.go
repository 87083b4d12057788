package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Options configures a Tracker. The zero value is the defaults.
type Options struct {
	// Root is the directory relative registered directories are taken under
	// (see Dir). Empty means the cgroup v2 mount at /sys/fs/cgroup/unified
	// when there is one, else /sys/fs/cgroup.
	Root string
	// Retain is how long an exited process's entry is kept, so that records
	// routed after the exit are still attributed. Zero means 30s.
	Retain time.Duration
	// MaxEntries bounds the pid map. When it is full the oldest exited
	// entry goes first; live processes are never evicted, and a new one is
	// not stored (counted in Stats.Dropped; Lookup then reads /proc).
	// Zero means 262144 (a few tens of MB at most).
	MaxEntries int
	// ContID makes a tracker for a kernel with the container-ID patches:
	// it follows no cgroups (no seed, no fanotify, no reads at exec) and
	// serves only the Views of NewContIDView, fed by SetContID and by
	// fork and exit events. Attribute and NewView are not for it.
	ContID bool
}

// Defaults of Options.
const (
	DefaultCgroupRetain     = 30 * time.Second
	DefaultCgroupMaxEntries = 1 << 18
)

// Stats are a Tracker's counters.
type Stats struct {
	Events   uint64 // process events read (all kinds)
	Forks    uint64 // fork events of processes (threads are not tracked)
	Execs    uint64 // exec events
	Exits    uint64 // exit events of processes
	Overruns uint64 // reads that failed with ENOBUFS: the kernel dropped events
	Resweeps uint64 // /proc rescans after an overrun
	// ExecMissed counts execs whose /proc/PID/cgroup was gone before it was
	// read, or read only once the process was exiting on a host with v1
	// hierarchies (an exiting process reads as in the root of each): the
	// entry keeps the (v1) cgroups inherited at fork, which are wrong if
	// the process moved itself before exec.
	ExecMissed uint64

	// Watching reports whether writes to cgroup.procs are watched (needs
	// CAP_SYS_ADMIN): processes that move themselves are then attributed
	// even when they are gone before their exec is read.
	Watching   bool
	Moves      uint64 // writers seen in the cgroup they wrote to: they moved themselves
	Gone       uint64 // writes whose writer was gone when read (or exiting, for a v1 cgroup): what it wrote is unknown, it stays where it was seen
	MoveErrors uint64 // unreadable fanotify events

	Hits       uint64 // Attribute calls answered from the history
	ParentHits uint64 // Attribute calls answered with the parent's history (its fork was missed)
	Ambiguous  uint64 // Attribute calls that fell where a move is only bounded: the cgroup holding every candidate answered
	Misses     uint64 // Attribute calls not answered

	Entries int    // pids in the map
	Exited  int    // of which exited, kept for Retain
	Sets    int    // distinct cgroup sets they share
	Evicted uint64 // exited entries removed before Retain to make room
	Dropped uint64 // live processes not stored because the map was full of live ones

	Views    int    // containers whose processes' namespaces are captured (view: container)
	Captures uint64 // processes whose namespaces were captured for them

	// Idle reports that no cgroup directory is registered (Follow) and
	// no View made: forks and execs are then not read from /proc.
	Idle bool
	// Reads counts the reads of /proc/PID/cgroup at forks and execs.
	Reads uint64
}

// Tracker follows which cgroups each process is in, from the kernel's
// process-events connector (fork, exec, exit), seeded from /proc, so that
// a record's pid= can be attributed after the process is gone. It is the
// attribution of stock kernels; with the container-ID patches records
// carry their contid instead.
//
// The kernel sends no process event when a process moves to another cgroup
// (a write to cgroup.procs). The tracker re-reads /proc/PID/cgroup at every
// exec, and watches writes to the cgroup mounts (fanotify) so that
// `sh -c 'echo $$ > cgroup.procs; exec prog'` is attributed even when prog
// is gone before its exec is read; after each such write the processes the
// cgroup lists are brought up to date (a process an orchestrator moved).
// Without fanotify (no CAP_SYS_ADMIN) only exec re-reads remain. An
// exiting process reads as in the root of every v1 hierarchy, so such reads
// only update the v2 place. PIDs are those of the initial pid namespace; a
// pid reused within Retain is attributed to its newest process.
//
// Run reads events on one goroutine; Lookup, Dir and Stats may be called
// from any.
type Tracker struct {
	log    hclog.Logger
	root   string
	mounts []cgroupMount // cgroup mounts at start
	self   Cgroups       // this process's cgroups at start: names the v1 hierarchies
	table  *pidTable
	conn   *netlink.Conn
	raw    syscall.RawConn
	buf    []byte
	seq    uint32
	fd     int        // of conn, for Run's thread
	wakeFd int        // eventfd that interrupts Run
	moveFd int        // fanotify descriptor watching writes to cgroup files; -1 without
	runMu  sync.Mutex // held by Run; Close takes it to wait for Run to stop
	once   sync.Once
	closed atomic.Bool

	events, forks, execs, exits, overruns, resweeps, execMissed atomic.Uint64
	hits, ambiguous, parentHits, misses                         atomic.Uint64
	moves, gone, moveErrors                                     atomic.Uint64
	reads                                                       atomic.Uint64

	// idleAsked: Follow was last given no directory. Run's goroutine
	// goes idle (idle) when it is set and no View is made, and reads
	// /proc again, after a sweep of it, when it is not.
	idleAsked atomic.Bool
	idleNow   atomic.Bool // idle, for Stats
	idle      bool        // of Run's goroutine

	monoOff   atomic.Int64 // CLOCK_REALTIME minus CLOCK_MONOTONIC, ns
	watermark atomic.Int64 // every event queued before this time is handled
	clock     func() int64 // CLOCK_REALTIME, ns

	dirMu   sync.Mutex // guards the fields below
	dirs    map[string]CgroupDir
	dirsGen uint64
	dirsAt  *string // &dirs[0] of the last Attribute call
	dirsLen int

	// Views (view.go): the containers whose processes' namespaces are
	// captured.
	viewMu     sync.Mutex // serializes changes of views
	views      atomic.Pointer[viewList]
	nsc        nsCache
	hostUserNS uint64       // inode of the initial user namespace (this process's)
	newNSSys   func() nsSys // tests' model; nil reads /proc
	ids        *idTable     // Options.ContID: the followed processes (contid.go)
	idSys      idSys        // tests' model; nil reads /proc
	captures   atomic.Uint64

	// Of Run's goroutine:
	nsys   nsSys
	sys    procSys
	writes []writeEvent // drainMoves'
	// handleWrites': writes that moved nobody seen, of this wake-up and
	// the last, and the processes that exited in this one and the last.
	unexplained, lastUnexplained []CgroupDir
	exitedNow, exitedBefore      []uint32
	moveBuf                      []byte
	unverified                   map[uint32]struct{} // execs whose cgroups could not be read, until their exit
	lastSweep                    time.Time
	lastWarned                   time.Time
}

// NewTracker subscribes to the kernel's process events and seeds the
// map from /proc. Events are buffered in the socket until Run reads them.
// Needs CAP_NET_ADMIN in the initial user and pid namespaces (the kernel
// ignores requests from others).
func NewTracker(log hclog.Logger, opt Options) (*Tracker, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opt.Retain <= 0 {
		opt.Retain = DefaultCgroupRetain
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = DefaultCgroupMaxEntries
	}
	if opt.ContID {
		return newIDTracker(log, opt)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("starting the cgroup tracker: %w", err)
	}
	mounts, err := parseCgroupMounts(mi)
	if err != nil {
		return nil, fmt.Errorf("starting the cgroup tracker: /proc/self/mountinfo: %w", err)
	}
	if opt.Root == "" {
		opt.Root = defaultCgroupRoot(mounts)
	}
	sc, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("starting the cgroup tracker: %w", err)
	}
	self, err := parseProcCgroup(sc)
	if err != nil {
		return nil, fmt.Errorf("starting the cgroup tracker: /proc/self/cgroup: %w", err)
	}
	t := newTracker(log, newPidTable(opt.MaxEntries, int64(opt.Retain)))
	t.root, t.mounts, t.self = opt.Root, mounts, self
	if err := t.open(); err != nil {
		t.Close()
		return nil, fmt.Errorf("starting the cgroup tracker: %w", err)
	}
	if err := t.subscribe(); err != nil {
		t.Close()
		return nil, fmt.Errorf("starting the cgroup tracker: %w", err)
	}
	if err := t.openMoves(); err != nil {
		log.Warn("attributing processes that move themselves to another cgroup on exec only", "error", err)
	} else {
		t.moveBuf = make([]byte, 4096)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/user", &st); err == nil {
		t.hostUserNS = st.Ino
	}
	t.syncClocks()
	t.seed()
	t.watermark.Store(t.now())
	return t, nil
}

// newTracker is a Tracker of either kind with nothing open yet.
func newTracker(log hclog.Logger, table *pidTable) *Tracker {
	return &Tracker{
		log:    log,
		table:  table,
		clock:  realtime,
		sys:    &procReader{},
		dirs:   map[string]CgroupDir{},
		buf:    make([]byte, 8192),
		seq:    uint32(os.Getpid()),
		wakeFd: -1,
		moveFd: -1,

		unverified: make(map[uint32]struct{}),
	}
}

// now is the table clock: CLOCK_REALTIME, the clock of audit stamps, in ns.
func (t *Tracker) now() int64 { return t.clock() }

func realtime() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_REALTIME, &ts)
	return ts.Nano()
}

// syncClocks measures the offset between CLOCK_MONOTONIC, the clock of
// process events, and CLOCK_REALTIME, that of audit stamps.
func (t *Tracker) syncClocks() {
	var rt, mono unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	unix.ClockGettime(unix.CLOCK_REALTIME, &rt)
	t.monoOff.Store(rt.Nano() - mono.Nano())
}

// kernelTime converts a process event's timestamp to the table clock.
func (t *Tracker) kernelTime(mono uint64) int64 {
	if mono == 0 {
		return t.now()
	}
	return int64(mono) + t.monoOff.Load()
}

// subscribe opens the connector socket and asks for process events,
// waiting for the kernel's answer. On Linux 6.6 and later it then narrows
// the events to fork, exec and exit.
func (t *Tracker) subscribe() error {
	if err := t.send(procCnMcastListen, 0); err != nil {
		return fmt.Errorf("subscribing to process events: %w", err)
	}
	if err := t.awaitAnswer(); err != nil {
		return fmt.Errorf("subscribing to process events: %w", err)
	}
	if err := t.send(procCnMcastListen, procEventFork|procEventExec|procEventExit); err != nil {
		return fmt.Errorf("subscribing to process events: narrowing to fork, exec and exit: %w", err)
	}
	return nil
}

func (t *Tracker) send(op, events uint32) error {
	t.seq++
	_, err := t.conn.Send(netlink.Message{
		Header: netlink.Header{Type: unix.NLMSG_DONE},
		Data:   mcastRequest(op, t.seq, events),
	})
	return err
}

// awaitAnswer reads until the kernel answers the last request, handling
// the events that come first.
func (t *Tracker) awaitAnswer() error {
	deadline := time.Now().Add(5 * time.Second)
	t.conn.SetReadDeadline(deadline)
	defer t.conn.SetReadDeadline(time.Time{})
	for {
		n, err := t.read()
		if errors.Is(err, unix.ENOBUFS) {
			t.overruns.Add(1)
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errors.New("no answer from the kernel in 5s (not in the initial user and pid namespaces?)")
		}
		if err != nil {
			return err
		}
		var answered bool
		var errno uint32
		t.eachEvent(t.buf[:n], func(ev procEvent) {
			if ev.What == procEventNone && ev.Ack == t.seq+1 {
				answered, errno = true, ev.Err
				return
			}
			t.handle(ev)
		})
		if answered && errno != 0 {
			return fmt.Errorf("the kernel answered: %w", syscall.Errno(errno))
		}
		if answered {
			return nil
		}
	}
}

// read reads one datagram into t.buf.
func (t *Tracker) read() (int, error) {
	var n int
	var rerr error
	err := t.raw.Read(func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), t.buf)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// eachEvent calls f for each process event in a datagram.
func (t *Tracker) eachEvent(b []byte, f func(procEvent)) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return
		}
		if typ := binary.NativeEndian.Uint16(b[4:]); typ != unix.NLMSG_ERROR && typ != unix.NLMSG_NOOP {
			if ev, err := parseProcEvent(b[unix.NLMSG_HDRLEN:l]); err == nil {
				f(ev)
			}
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
}

// overrun counts events the kernel dropped and, at most every 5s, rescans
// /proc so the map has the processes it missed and lets go of those whose
// exits it missed.
func (t *Tracker) overrun() {
	t.overruns.Add(1)
	if time.Since(t.lastWarned) > 10*time.Second {
		t.lastWarned = time.Now()
		t.log.Warn("process events lost: the kernel's socket buffer overflowed", "overruns", t.overruns.Load())
	}
	if t.ids != nil {
		t.idSweep()
		return
	}
	if time.Since(t.lastSweep) > 5*time.Second {
		t.lastSweep = time.Now()
		t.resweeps.Add(1)
		alive := t.seed()
		t.table.sweep(alive, t.now())
		clear(t.unverified) // their exits may be among the lost events
	}
}

// handle applies one event to the history. Threads are not tracked:
// audit records name processes (the pid= is the thread group ID).
func (t *Tracker) handle(ev procEvent) {
	t.events.Add(1)
	switch ev.What {
	case procEventFork:
		if ev.PID != ev.TGID {
			return
		}
		t.forks.Add(1)
		if t.ids != nil {
			t.idFork(ev.TGID, ev.Parent, t.kernelTime(ev.Time))
			return
		}
		// The event names the new process's parent, which with
		// CLONE_PARENT (runc's nsexec uses it) is not the process that
		// forked it, whose cgroups it has; and clone3 can place it in
		// another cgroup. So it is read too: the inherited place counts
		// only where that read agrees.
		t.table.fork(ev.TGID, ev.Parent, t.kernelTime(ev.Time))
		if t.idle {
			return // the parent's places, inherited, until a sweep reads it
		}
		t.reads.Add(1)
		t.readProc(ev.TGID, false)
	case procEventExec:
		t.execs.Add(1)
		if t.ids != nil {
			t.idExec(ev.TGID)
			return
		}
		ts := t.kernelTime(ev.Time)
		known := t.table.exec(ev.TGID, ts)
		if t.idle {
			return
		}
		t.reads.Add(1)
		ok, blind := t.readProcOf(ev.TGID, false, false)
		if !ok {
			t.execMissed.Add(1)
			t.unverified[ev.TGID] = struct{}{}
		} else if blind {
			// Already exiting: its v1 places read as the roots, and will
			// at its exit too. Only the v2 place was read.
			t.execMissed.Add(1)
		}
		if ok && !known {
			t.table.exec(ev.TGID, ts) // a process first known by this read
		}
	case procEventExit:
		if ev.PID != ev.TGID {
			return
		}
		t.exits.Add(1)
		if t.ids != nil {
			t.idExit(ev.TGID, t.kernelTime(ev.Time))
			return
		}
		if _, ok := t.unverified[ev.TGID]; ok {
			// A zombie's /proc/PID/cgroup is still there until it is reaped.
			delete(t.unverified, ev.TGID)
			if ok, blind := t.readProcOf(ev.TGID, false, false); ok && !blind {
				t.execMissed.Add(^uint64(0))
			}
		}
		t.table.exit(ev.TGID, t.kernelTime(ev.Time))
		t.exited(ev.TGID)
	}
}

// seed reads /proc/PID/cgroup of every process in /proc, and returns the
// pids it saw. Those the history lacks are taken to have been where they
// are since before the tracker started.
func (t *Tracker) seed() map[uint32]struct{} {
	alive := make(map[uint32]struct{})
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.log.Warn("seeding the cgroup tracker", "error", err)
		return alive
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		alive[uint32(pid)] = struct{}{}
		t.readProc(uint32(pid), true)
	}
	return alive
}

// Current returns the cgroups process pid was last seen in, from the
// history (a live or recently exited process).
func (t *Tracker) Current(pid uint32) (Cgroups, bool) {
	return t.table.current(pid)
}

// Attribute returns the index in dirs (registered cgroup directories,
// deepest first) of the deepest one that held process pid at at, the
// stamp of an event (ns since the epoch), or -1. When the process is
// unknown at that time (its fork was missed), its parent ppid then answers
// (0: none). When the process moved around that time and the history only
// bounds the moment, the answer is the deepest directory that held it on
// both sides: an event never goes to a container the process may not have
// been in. A process's set of cgroups remembers its answer, so the usual
// call takes a read lock and no allocation.
func (t *Tracker) Attribute(pid, ppid uint32, at int64, dirs []string) int {
	var buf [8]*cgset
	c := t.table.at(pid, at, buf[:0])
	if len(c) == 0 && ppid != 0 {
		if c = t.table.at(ppid, at, buf[:0]); len(c) > 0 {
			t.parentHits.Add(1)
		}
	} else if len(c) > 0 {
		t.hits.Add(1)
	}
	if len(c) == 0 || containsSet(c, nil) {
		t.misses.Add(1)
		return -1
	}
	t.dirMu.Lock()
	defer t.dirMu.Unlock()
	if len(dirs) != t.dirsLen || (len(dirs) > 0 && &dirs[0] != t.dirsAt) {
		t.dirsGen++
		t.dirsLen = len(dirs)
		t.dirsAt = nil
		if len(dirs) > 0 {
			t.dirsAt = &dirs[0]
		}
	}
	gen := t.dirsGen & 0xffffffff
	if len(c) == 1 {
		if m := c[0].memo.Load(); m>>32 == gen {
			return int(m&0xffffffff) - 1
		}
	} else {
		t.ambiguous.Add(1)
	}
	idx := -1
	for i, dir := range dirs {
		d, ok := t.dirLocked(dir)
		if !ok {
			continue
		}
		all := true
		for _, s := range c {
			all = all && s.cg.Within(d)
		}
		if all {
			idx = i
			break
		}
	}
	if len(c) == 1 {
		c[0].memo.Store(gen<<32 | uint64(idx+1))
	}
	return idx
}

// Settled reports whether the tracker has handled every process event and
// cgroup write that can bear on an event stamped at.
func (t *Tracker) Settled(at int64) bool {
	return t.watermark.Load() > at+Slack
}

// dirLocked resolves a registered cgroup directory once; dirMu is held.
func (t *Tracker) dirLocked(path string) (CgroupDir, bool) {
	if d, ok := t.dirs[path]; ok {
		return d, d.Dir != ""
	}
	d, err := t.Dir(path)
	if err != nil {
		t.log.Warn("a registered cgroup directory is not a cgroup; nothing is attributed to it", "cgroup", path, "error", err)
		d = CgroupDir{}
	}
	if len(t.dirs) > 1<<14 {
		clear(t.dirs)
	}
	t.dirs[path] = d
	return d, err == nil
}

// Dir resolves a registered cgroup directory: an absolute path under a
// cgroup mount, or a path relative to Options.Root. See CgroupOf.
func (t *Tracker) Dir(dir string) (CgroupDir, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(t.root, dir)
	}
	if d, err := t.resolve(dir); err == nil {
		return d, nil
	}
	return CgroupOf(dir) // a hierarchy mounted since the start
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() Stats {
	s := Stats{
		Events: t.events.Load(), Forks: t.forks.Load(), Execs: t.execs.Load(), Exits: t.exits.Load(),
		Overruns: t.overruns.Load(), Resweeps: t.resweeps.Load(), ExecMissed: t.execMissed.Load(),
		Watching: t.moveFd >= 0, Moves: t.moves.Load(), Gone: t.gone.Load(), MoveErrors: t.moveErrors.Load(),
		Hits: t.hits.Load(), Ambiguous: t.ambiguous.Load(), ParentHits: t.parentHits.Load(), Misses: t.misses.Load(),
	}
	s.Entries, s.Exited, s.Sets, s.Evicted, s.Dropped = t.table.counts()
	if vl := t.views.Load(); vl != nil {
		s.Views = len(vl.views)
	}
	s.Views += t.ids.idViews()
	s.Captures = t.captures.Load()
	s.Idle, s.Reads = t.idleNow.Load(), t.reads.Load()
	return s
}
