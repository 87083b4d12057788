package source

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

// CgroupOptions configures a CgroupTracker. The zero value is the defaults.
type CgroupOptions struct {
	// Root is the directory relative registered directories are taken under
	// (see Dir). Empty means the cgroup v2 mount at /sys/fs/cgroup/unified
	// when there is one, else /sys/fs/cgroup.
	Root string
	// Retain is how long an exited process's entry is kept, so that records
	// routed after the exit are still attributed. Zero means 30s.
	Retain time.Duration
	// MaxEntries bounds the pid map. When it is full the oldest exited
	// entry goes first; live processes are never evicted, and a new one is
	// not stored (counted in CgroupStats.Dropped; Lookup then reads /proc).
	// Zero means 262144 (a few tens of MB at most).
	MaxEntries int
}

// Defaults of CgroupOptions.
const (
	DefaultCgroupRetain     = 30 * time.Second
	DefaultCgroupMaxEntries = 1 << 18
)

// CgroupStats are a CgroupTracker's counters.
type CgroupStats struct {
	Events   uint64 // process events read (all kinds)
	Forks    uint64 // fork events of processes (threads are not tracked)
	Execs    uint64 // exec events
	Exits    uint64 // exit events of processes
	Overruns uint64 // reads that failed with ENOBUFS: the kernel dropped events
	Resweeps uint64 // /proc rescans after an overrun
	// ExecMissed counts execs whose /proc/PID/cgroup was gone before it was
	// read: the entry keeps the cgroups inherited at fork, which are wrong
	// if the process moved itself before exec.
	ExecMissed uint64

	// Watching reports whether writes to cgroup.procs are watched (needs
	// CAP_SYS_ADMIN): processes that move themselves are then attributed
	// even when they are gone before their exec is read.
	Watching   bool
	Moves      uint64 // self-moves taken from a write to cgroup.procs by a process already gone
	Helpers    uint64 // such writes taken for a helper's, moving another process
	MoveErrors uint64 // unreadable fanotify events

	Hits       uint64 // Lookups answered from the map
	ProcReads  uint64 // Lookups answered by reading /proc/PID/cgroup
	ParentHits uint64 // Lookups answered with the parent's cgroups
	Misses     uint64 // Lookups not answered

	Entries int    // pids in the map
	Exited  int    // of which exited, kept for Retain
	Sets    int    // distinct cgroup sets they share
	Evicted uint64 // exited entries removed before Retain to make room
	Dropped uint64 // live processes not stored because the map was full of live ones
}

// CgroupTracker follows which cgroups each process is in, from the kernel's
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
type CgroupTracker struct {
	log    hclog.Logger
	root   string
	mounts []cgroupMount // cgroup mounts at start
	self   Cgroups       // this process's cgroups at start: names the v1 hierarchies
	table  *pidTable
	epoch  time.Time
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
	hits, procReads, parentHits, misses                         atomic.Uint64
	moves, helpers, moveErrors                                  atomic.Uint64

	// Of Run's goroutine:
	reader     procReader
	moveBuf    []byte
	unverified map[uint32]struct{} // execs whose cgroups could not be read, until their exit
	lastSweep  time.Time
	lastWarned time.Time
}

// NewCgroupTracker subscribes to the kernel's process events and seeds the
// map from /proc. Events are buffered in the socket until Run reads them.
// Needs CAP_NET_ADMIN in the initial user and pid namespaces (the kernel
// ignores requests from others).
func NewCgroupTracker(log hclog.Logger, opt CgroupOptions) (*CgroupTracker, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if opt.Retain <= 0 {
		opt.Retain = DefaultCgroupRetain
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = DefaultCgroupMaxEntries
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("starting the cgroup tracker: %w", err)
	}
	mounts := parseCgroupMounts(mi)
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
	t := &CgroupTracker{
		log:    log,
		root:   opt.Root,
		table:  newPidTable(opt.MaxEntries, int64(opt.Retain)),
		epoch:  time.Now(),
		buf:    make([]byte, 8192),
		seq:    uint32(os.Getpid()),
		wakeFd: -1,
		moveFd: -1,
		mounts: mounts,
		self:   self,

		unverified: make(map[uint32]struct{}),
	}
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
	t.seed()
	return t, nil
}

// now is the table clock: nanoseconds since the tracker started, never 0.
func (t *CgroupTracker) now() int64 { return int64(time.Since(t.epoch)) + 1 }

// subscribe opens the connector socket and asks for process events,
// waiting for the kernel's answer. On Linux 6.6 and later it then narrows
// the events to fork, exec and exit.
func (t *CgroupTracker) subscribe() error {
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

func (t *CgroupTracker) send(op, events uint32) error {
	t.seq++
	_, err := t.conn.Send(netlink.Message{
		Header: netlink.Header{Type: unix.NLMSG_DONE},
		Data:   mcastRequest(op, t.seq, events),
	})
	return err
}

// awaitAnswer reads until the kernel answers the last request, handling
// the events that come first.
func (t *CgroupTracker) awaitAnswer() error {
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
func (t *CgroupTracker) read() (int, error) {
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
func (t *CgroupTracker) eachEvent(b []byte, f func(procEvent)) {
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
func (t *CgroupTracker) overrun() {
	t.overruns.Add(1)
	if time.Since(t.lastWarned) > 10*time.Second {
		t.lastWarned = time.Now()
		t.log.Warn("process events lost: the kernel's socket buffer overflowed", "overruns", t.overruns.Load())
	}
	if time.Since(t.lastSweep) > 5*time.Second {
		t.lastSweep = time.Now()
		t.resweeps.Add(1)
		alive := t.seed()
		t.table.sweep(alive, t.now())
		clear(t.unverified) // their exits may be among the lost events
	}
}

// handle applies one event to the map. Threads are not tracked: audit
// records name processes (the pid= is the thread group ID).
func (t *CgroupTracker) handle(ev procEvent) {
	t.events.Add(1)
	switch ev.What {
	case procEventFork:
		if ev.PID != ev.TGID {
			return
		}
		t.forks.Add(1)
		if !t.table.inherit(ev.TGID, ev.Parent) {
			t.readProc(ev.TGID, false)
		}
	case procEventExec:
		t.execs.Add(1)
		ok := t.readProc(ev.TGID, false)
		if !ok {
			t.execMissed.Add(1)
			t.unverified[ev.TGID] = struct{}{}
		}
	case procEventExit:
		if ev.PID != ev.TGID {
			return
		}
		t.exits.Add(1)
		if _, ok := t.unverified[ev.TGID]; ok {
			// A zombie's /proc/PID/cgroup is still there until it is reaped.
			delete(t.unverified, ev.TGID)
			if t.readProc(ev.TGID, false) {
				t.execMissed.Add(^uint64(0))
			}
		}
		t.table.exit(ev.TGID, t.now())
	}
}

// seed adds every process in /proc that the map lacks, and returns the
// pids it saw.
func (t *CgroupTracker) seed() map[uint32]struct{} {
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

// Lookup returns the cgroups of the process pid: from the map (a live or
// recently exited process), else from /proc/PID/cgroup if it is alive (and
// then keeps them), else those of its parent ppid (0: none). ok is false
// when none of these is known. The answer from the map does not allocate.
func (t *CgroupTracker) Lookup(pid, ppid uint32) (cgroups Cgroups, ok bool) {
	if c, ok := t.table.get(pid); ok {
		t.hits.Add(1)
		return c, true
	}
	if b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup"); pid != 0 && err == nil && t.store(pid, b, true, exitingPid) {
		if c, ok := t.table.get(pid); ok {
			t.procReads.Add(1)
			return c, true
		}
	}
	if ppid != 0 {
		if c, ok := t.table.get(ppid); ok {
			t.parentHits.Add(1)
			return c, true
		}
	}
	t.misses.Add(1)
	return Cgroups{}, false
}

// Dir resolves a registered cgroup directory: an absolute path under a
// cgroup mount, or a path relative to CgroupOptions.Root. See CgroupOf.
func (t *CgroupTracker) Dir(dir string) (CgroupDir, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(t.root, dir)
	}
	return CgroupOf(dir)
}

// Stats returns the tracker's counters.
func (t *CgroupTracker) Stats() CgroupStats {
	s := CgroupStats{
		Events: t.events.Load(), Forks: t.forks.Load(), Execs: t.execs.Load(), Exits: t.exits.Load(),
		Overruns: t.overruns.Load(), Resweeps: t.resweeps.Load(), ExecMissed: t.execMissed.Load(),
		Watching: t.moveFd >= 0, Moves: t.moves.Load(), Helpers: t.helpers.Load(), MoveErrors: t.moveErrors.Load(),
		Hits: t.hits.Load(), ProcReads: t.procReads.Load(), ParentHits: t.parentHits.Load(), Misses: t.misses.Load(),
	}
	s.Entries, s.Exited, s.Sets, s.Evicted, s.Dropped = t.table.counts()
	return s
}
