package queue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

// The state file of a spooled queue is one page mapped shared into memory.
// Push and Commit store their sequence numbers into it with plain memory
// writes, no system call; the page lives in the kernel's page cache, so it
// survives the process being killed (kill -9, a panic) though not a power
// loss. After a crash, Open reads it to count exactly the copies that were in
// memory and so are lost.
//
//	0   "AUQSTATE"
//	8   u64 clean: 1 after Close, 0 while open
//	16  u64 last seq pushed
//	24  u64 last seq committed
//	32  u64 number of gaps (at most maxGaps)
//	40  maxGaps × (u64 seq, u64 lost): copies lost before seq, not yet told
//	1064 maxGaps × (u64 records, u64 first time, u64 first serial,
//	    u64 last time, u64 last serial): records left unrouted before the
//	    same gap's seq (Unrouted; a time is SEC*1000+MSEC); zero in a state
//	    file written before it was added
const (
	stateFile = "state"
	stateSize = 4096
	maxGaps   = 64

	offClean     = 8
	offPushed    = 16
	offCommitted = 24
	offNGaps     = 32
	offGaps      = 40
	offUnrouted  = offGaps + 16*maxGaps
	unroutedLen  = 40
)

var stateMagic = [8]byte{'A', 'U', 'Q', 'S', 'T', 'A', 'T', 'E'}

// state is the mapped state file; the zero value (no spool) stores nothing.
type state struct {
	f   *os.File
	mem []byte
}

// openState opens and locks the state file in dir, creating it if needed.
// A second queue on the same directory is refused.
func openState(d *beneath.Dir) (*state, error) {
	path := filepath.Join(d.Path(), stateFile)
	f, err := d.OpenFile(stateFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	st := &state{f: f}
	if err := st.init(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

func (st *state) init() error {
	if err := syscall.Flock(int(st.f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return ErrSpoolInUse
		}
		return fmt.Errorf("locking: %w", err)
	}
	if err := st.f.Truncate(stateSize); err != nil {
		return err
	}
	mem, err := syscall.Mmap(int(st.f.Fd()), 0, stateSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mapping: %w", err)
	}
	st.mem = mem
	if [8]byte(mem[:8]) != stateMagic {
		clear(mem)
		copy(mem, stateMagic[:])
		st.put(offClean, 1)
	}
	return nil
}

func (st *state) get(off int) uint64 { return binary.LittleEndian.Uint64(st.mem[off:]) }

func (st *state) put(off int, v uint64) {
	if st.mem != nil {
		binary.LittleEndian.PutUint64(st.mem[off:], v)
	}
}

// gaps returns the gaps stored in the state.
func (st *state) gaps() []gap {
	n := min(st.get(offNGaps), maxGaps)
	gs := make([]gap, 0, n)
	for i := range int(n) {
		o := offGaps + 16*i
		gs = append(gs, gap{seq: st.get(o), lost: st.get(o + 8), un: st.getUnrouted(i)})
	}
	return gs
}

func (st *state) getUnrouted(i int) Unrouted {
	o := offUnrouted + unroutedLen*i
	first, last := st.get(o+8), st.get(o+24)
	return Unrouted{Records: st.get(o),
		First: Stamp{Sec: first / 1000, Msec: uint32(first % 1000), Serial: st.get(o + 16)},
		Last:  Stamp{Sec: last / 1000, Msec: uint32(last % 1000), Serial: st.get(o + 32)}}
}

func (st *state) putUnrouted(i int, u Unrouted) {
	o := offUnrouted + unroutedLen*i
	st.put(o, u.Records)
	st.put(o+8, u.First.Sec*1000+uint64(u.First.Msec))
	st.put(o+16, u.First.Serial)
	st.put(o+24, u.Last.Sec*1000+uint64(u.Last.Msec))
	st.put(o+32, u.Last.Serial)
}

// putGaps stores gs, merging the newest into one if there are too many.
func (st *state) putGaps(gs []gap) {
	if st.mem == nil {
		return
	}
	if len(gs) > maxGaps {
		last := gap{seq: gs[len(gs)-1].seq}
		for _, g := range gs[maxGaps-1:] {
			last.lost += g.lost + g.inflight + g.told
			last.un = last.un.Then(g.unTold).Then(g.un)
		}
		gs = append(gs[:maxGaps-1:maxGaps-1], last)
	}
	for i, g := range gs {
		st.put(offGaps+16*i, g.seq)
		st.put(offGaps+16*i+8, g.lost+g.inflight+g.told)
		st.putUnrouted(i, g.unTold.Then(g.un))
	}
	st.put(offNGaps, uint64(len(gs)))
}

// close writes the page to disk, unmaps it and unlocks the file.
func (st *state) close() error {
	if st.mem == nil {
		return nil
	}
	var errs []error
	// fsync writes back the pages of a shared mapping too.
	if err := st.f.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("syncing state: %w", err))
	}
	if err := syscall.Munmap(st.mem); err != nil {
		errs = append(errs, fmt.Errorf("unmapping state: %w", err))
	}
	st.mem = nil
	if err := st.f.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
