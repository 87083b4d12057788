package router

import (
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Assembler groups records into events by serial. An event closes on its EOE
// record; an event with no EOE closes when no record of it has arrived for
// the timeout. A syscall event (one with a SYSCALL record) that closes by
// timeout is marked Partial: its EOE never came. Records from several CPUs
// may interleave; they are grouped by serial regardless of order, and kept
// in arrival (kernel) order within an event. Nothing is reported lost.
type Assembler struct {
	timeout time.Duration
	open    map[uint64]*pending
	fifo    []*pending // open events, oldest first (may hold closed ones)
	free    []*pending
	emit    func(*record.Event)
}

type pending struct {
	serial  uint64
	last    time.Time
	syscall bool
	closed  bool
	ev      record.Event
	bufs    [][]byte
}

// NewAssembler returns an assembler that calls emit for every closed event.
// The event and its records are valid only during the call.
func NewAssembler(timeout time.Duration, emit func(*record.Event)) *Assembler {
	return &Assembler{timeout: timeout, open: map[uint64]*pending{}, emit: emit}
}

// Add adds one record; buf is the buffer r points into, owned by the
// assembler until the event is emitted, then handed to release.
func (a *Assembler) Add(r *record.Record, buf []byte, now time.Time, release func([]byte)) {
	if r.Serial == 0 {
		// No serial to group by: an event of its own.
		a.emitOne(r, buf, release)
		return
	}
	p := a.open[r.Serial]
	if p == nil {
		p = a.get()
		p.serial = r.Serial
		a.open[r.Serial] = p
		a.fifo = append(a.fifo, p)
	}
	p.last = now
	if r.Type == record.TypeSyscall {
		p.syscall = true
	}
	p.ev.Records = append(p.ev.Records, *r)
	p.bufs = append(p.bufs, buf)
	if r.Type == record.TypeEOE {
		a.close(p, false, release)
	}
}

func (a *Assembler) emitOne(r *record.Record, buf []byte, release func([]byte)) {
	p := a.get()
	p.ev.Records = append(p.ev.Records, *r)
	p.bufs = append(p.bufs, buf)
	a.emit(&p.ev)
	a.put(p, release)
}

// Expire closes events idle for the timeout. Call it regularly.
func (a *Assembler) Expire(now time.Time, release func([]byte)) {
	n := 0
	for _, p := range a.fifo {
		if p.closed {
			a.put(p, release)
			n++
			continue
		}
		if now.Sub(p.last) < a.timeout {
			break
		}
		a.close(p, p.syscall, release)
		a.put(p, release)
		n++
	}
	if n > 0 {
		copy(a.fifo, a.fifo[n:])
		clear(a.fifo[len(a.fifo)-n:])
		a.fifo = a.fifo[:len(a.fifo)-n]
	}
}

// Flush closes every open event (at shutdown).
func (a *Assembler) Flush(release func([]byte)) {
	a.Expire(time.Now().Add(a.timeout*2+time.Hour), release)
}

// Open returns the number of events not yet closed.
func (a *Assembler) Open() int { return len(a.open) }

func (a *Assembler) close(p *pending, partial bool, release func([]byte)) {
	delete(a.open, p.serial)
	p.ev.Partial = partial
	a.emit(&p.ev)
	p.closed = true
	for i, b := range p.bufs {
		release(b)
		p.bufs[i] = nil
	}
	p.bufs = p.bufs[:0]
}

func (a *Assembler) get() *pending {
	if n := len(a.free); n > 0 {
		p := a.free[n-1]
		a.free = a.free[:n-1]
		return p
	}
	return &pending{}
}

func (a *Assembler) put(p *pending, release func([]byte)) {
	for i, b := range p.bufs {
		release(b)
		p.bufs[i] = nil
	}
	p.bufs = p.bufs[:0]
	clear(p.ev.Records)
	p.ev.Records = p.ev.Records[:0]
	p.ev.Partial, p.syscall, p.closed, p.serial = false, false, false, 0
	if len(a.free) < 4096 {
		a.free = append(a.free, p)
	}
}
