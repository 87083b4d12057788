package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// maxChainEntries bounds the contids whose parents are remembered; past
// it the book starts again empty (a contid then unknown is refused, never
// guessed).
const maxChainEntries = 65536

// maxChainDepth bounds a chain: deeper is taken as a loop.
const maxChainDepth = 64

// chainBook remembers the parent of each contid the kernel set, from the
// successful op=set CONTAINER_OP records (old-contid is the container the
// new one is nested in), and forgets a contid when the kernel releases it
// (op=drop). It is fed only by the kernel source, never by listener peers.
type chainBook struct {
	mu     sync.Mutex // guards parent and buf
	parent map[uint64]uint64
	buf    []uint64
}

// note looks at one record from the kernel; only CONTAINER_OP is read.
func (b *chainBook) note(typ uint16, data []byte) {
	if typ != record.TypeContainerOp {
		return
	}
	var r record.Record
	if record.Parse(&r, typ, data) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	op, err := record.ParseContainerOp(&r, b.buf[:0])
	if err != nil || !op.Result {
		return
	}
	switch {
	case op.Op == "drop" && len(op.OldContID) > 0:
		delete(b.parent, op.OldContID[0])
	case op.Op == "set" && len(op.ContID) == 1:
		parent := record.Unset
		if len(op.OldContID) > 0 {
			parent = op.OldContID[0]
		}
		if parent == op.ContID[0] {
			return
		}
		if b.parent == nil || len(b.parent) >= maxChainEntries {
			b.parent = map[uint64]uint64{}
		}
		b.parent[op.ContID[0]] = parent
	}
}

// reset forgets every chain: the kernel lost records, so an op=drop (and
// a reuse of the contid elsewhere) may have gone unseen.
func (b *chainBook) reset() {
	b.mu.Lock()
	b.parent = nil
	b.mu.Unlock()
}

// chain returns id's chain as the records told it, or false when id was
// not seen set (or its chain is broken).
func (b *chainBook) chain(id uint64) ([]uint64, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []uint64{id}
	for cur := id; ; {
		p, ok := b.parent[cur]
		switch {
		case !ok:
			return nil, false
		case p == record.Unset:
			return out, true
		case len(out) >= maxChainDepth:
			return nil, false
		}
		out, cur = append(out, p), p
	}
}

// chains is the daemon's control.Chains: the op=set records it saw, else
// the process tree in /proc.
type chains struct {
	book *chainBook
	proc string
}

func (c chains) Chain(id uint64) ([]uint64, error) {
	if ch, ok := c.book.chain(id); ok {
		return ch, nil
	}
	ch, err := procChain(c.proc, id)
	if err != nil {
		return nil, fmt.Errorf("no op=set record of it seen since the daemon started, and from %s: %w", c.proc, err)
	}
	return ch, nil
}

// procChain establishes id's chain from the process tree under proc: a
// task whose audit_containerid is id, then the contids of its ancestors
// by parent pid, innermost first. A task's contid is always its
// ancestors' or nested in theirs (the kernel sets a contid only on a task
// without children, nested in the writer's), so the chain found is a part
// of the true one: it can miss an enclosing container (its tasks gone),
// never add one. A parent that started after its child is a reused pid:
// refused. Needs root (audit_containerid is mode 0600).
func procChain(proc string, id uint64) ([]uint64, error) {
	if _, err := os.Stat(filepath.Join(proc, "self", "audit_containerid")); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s/self/audit_containerid does not exist: this kernel lacks the container-ID patches", control.ErrNoChain, proc)
	}
	pid, err := findContid(proc, id)
	if err != nil {
		return nil, err
	}
	out := []uint64{id}
	for range maxChainDepth * 64 {
		ppid, start, err := procStat(proc, pid)
		if err != nil {
			return nil, err
		}
		if ppid == 0 {
			return out, nil
		}
		_, pstart, err := procStat(proc, ppid)
		if err != nil {
			return nil, err
		}
		c, err := procContid(proc, ppid)
		if err != nil {
			return nil, err
		}
		// The parent is still the task we read, and still our parent.
		_, pstart2, err1 := procStat(proc, ppid)
		ppid2, _, err2 := procStat(proc, pid)
		switch {
		case err1 != nil || err2 != nil || pstart2 != pstart || ppid2 != ppid:
			return nil, fmt.Errorf("%w: the process tree changed while it was read (pid %d)", control.ErrNoChain, pid)
		case pstart > start:
			return nil, fmt.Errorf("%w: pid %d started after its child %d (a reused pid)", control.ErrNoChain, ppid, pid)
		case c == record.Unset:
			return out, nil
		case c != out[len(out)-1]:
			for _, o := range out {
				if o == c {
					return nil, fmt.Errorf("%w: contid %d appears twice in the chain of pid %d", control.ErrNoChain, c, pid)
				}
			}
			if out = append(out, c); len(out) > maxChainDepth {
				return nil, fmt.Errorf("%w: a chain deeper than %d", control.ErrNoChain, maxChainDepth)
			}
		}
		pid = ppid
	}
	return nil, fmt.Errorf("%w: the process tree is deeper than %d", control.ErrNoChain, maxChainDepth*64)
}

// findContid returns a process whose audit_containerid is id.
func findContid(proc string, id uint64) (int, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", control.ErrNoChain, err)
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if c, err := procContid(proc, pid); err == nil && c == id {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: no process has audit container ID %d", control.ErrNoChain, id)
}

func procContid(proc string, pid int) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "audit_containerid"))
	if err != nil {
		return 0, fmt.Errorf("%w: %v", control.ErrNoChain, err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s/%d/audit_containerid: %v", control.ErrNoChain, proc, pid, err)
	}
	return n, nil
}

// procStat reads a task's parent pid and start time (clock ticks after
// boot) from PROC/PID/stat.
func procStat(proc string, pid int) (ppid int, start uint64, err error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", control.ErrNoChain, err)
	}
	// The command name, in parentheses, may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 20 {
		return 0, 0, fmt.Errorf("%w: %s/%d/stat is not a stat line", control.ErrNoChain, proc, pid)
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: %s/%d/stat: bad ppid or starttime", control.ErrNoChain, proc, pid)
	}
	return ppid, start, nil
}
