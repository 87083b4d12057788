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
//
// With a delay, closed events are held that long before they are emitted
// (on stock kernels, so that the process-events tracker has caught up with
// the processes the event names), except those that early says need not
// wait while no other event waits: events are emitted in the order they
// closed either way.
type Assembler struct {
	timeout time.Duration
	delay   time.Duration
	open    map[uint64]*pending // open events, but for last until a record of another arrives
	fifo    []*pending          // the events of open, in order of arrival (may hold closed ones)
	ready   []*pending          // closed events waiting for the delay, in order
	free    []*pending
	last    *pending // the event the last record went to (open, or closed and not yet recycled)
	emit    func(ev *record.Event, pid int64)
	early   func(ev *record.Event, pid int64) bool // nil: every event waits for the delay
}

type pending struct {
	serial   uint64
	last     time.Time
	closedAt time.Time
	syscall  bool
	closed   bool
	inFifo   bool
	inMap    bool  // in open (and so in fifo until it closes)
	pid      int64 // the SYSCALL record's pid=, or -1
	ev       record.Event
	bufs     [][]byte
}

// NewAssembler returns an assembler that calls emit for every closed event,
// delay after it closed, with the pid= of its SYSCALL record (-1: none).
// The event and its records are valid only during the call.
func NewAssembler(timeout, delay time.Duration, emit func(ev *record.Event, pid int64)) *Assembler {
	return &Assembler{timeout: timeout, delay: delay, open: map[uint64]*pending{}, emit: emit}
}

// Add adds one record; buf is the buffer r points into, owned by the
// assembler until the event is emitted, then handed to release.
func (a *Assembler) Add(r *record.Record, buf []byte, now time.Time, release func([]byte)) {
	if r.Serial == 0 {
		// No serial to group by: an event of its own.
		p := a.get()
		a.keep(p, r, buf)
		a.close(p, false, now, release)
		return
	}
	// The records of an event mostly arrive one after another, and the
	// event closes before the next begins: then it never enters the map or
	// the fifo, and is recycled as soon as it is emitted. Only an event
	// left open when a record of another arrives (interleaved, or one that
	// never sees an EOE) waits in them.
	p := a.last
	if p == nil || p.serial != r.Serial || p.closed {
		if p != nil && !p.closed && !p.inMap {
			a.open[p.serial], p.inMap = p, true // interleaved: may get more
			p.inFifo = true
			a.fifo = append(a.fifo, p)
		}
		p = nil
		if len(a.open) > 0 {
			p = a.open[r.Serial]
		}
		if p == nil {
			p = a.get()
			p.serial = r.Serial
		}
		a.last = p
	}
	p.last = now
	a.keep(p, r, buf)
	if r.Type == record.TypeEOE {
		a.unmap(p)
		a.close(p, false, now, release)
		a.popClosed()
	}
}

func (a *Assembler) keep(p *pending, r *record.Record, buf []byte) {
	if r.Type == record.TypeSyscall && !p.syscall {
		p.syscall = true
		// Read now, while the record is in the cache, not after the delay.
		if pid, ok := syscallPID(r.Text); ok {
			p.pid = int64(pid)
		}
	}
	p.ev.Records = append(p.ev.Records, *r)
	p.bufs = append(p.bufs, buf)
}

// unmap takes p out of the open events.
func (a *Assembler) unmap(p *pending) {
	if p.inMap {
		delete(a.open, p.serial)
		p.inMap = false
	}
}

// popClosed recycles the closed events at the head of the fifo, so that in
// the usual case (events complete in order) the fifo stays short and no
// event is allocated.
func (a *Assembler) popClosed() {
	n := 0
	for _, p := range a.fifo {
		if !p.closed {
			break
		}
		p.inFifo = false
		if len(p.bufs) == 0 && len(p.ev.Records) == 0 {
			a.put(p)
		}
		n++
	}
	if n > 0 {
		copy(a.fifo, a.fifo[n:])
		clear(a.fifo[len(a.fifo)-n:])
		a.fifo = a.fifo[:len(a.fifo)-n]
	}
}

// close emits p now (no delay, or early and nothing ahead of it) or
// queues it for the delay.
func (a *Assembler) close(p *pending, partial bool, now time.Time, release func([]byte)) {
	p.ev.Partial, p.closed, p.closedAt = partial, true, now
	if a.delay > 0 && (len(a.ready) > 0 || a.early == nil || !a.early(&p.ev, p.pid)) {
		a.ready = append(a.ready, p)
		return
	}
	a.emit(&p.ev, p.pid)
	a.done(p, release)
}

// done releases p's buffers; p itself is recycled once out of the fifo.
func (a *Assembler) done(p *pending, release func([]byte)) {
	for i, b := range p.bufs {
		release(b)
		p.bufs[i] = nil
	}
	p.bufs = p.bufs[:0]
	clear(p.ev.Records)
	p.ev.Records = p.ev.Records[:0]
	if !p.inFifo {
		a.put(p)
	}
}

// Expire closes events idle for the timeout and emits delayed events whose
// delay has passed. Call it regularly.
//
// It walks the whole fifo, not only up to the first event still open: an
// event that never sees an EOE (a user message, say) stays at its head for
// the timeout, and the events that closed behind it are recycled here
// meanwhile, not left to pile up behind it.
func (a *Assembler) Expire(now time.Time, release func([]byte)) {
	kept := a.fifo[:0]
	for _, p := range a.fifo {
		switch {
		case p.closed:
			p.inFifo = false
			if len(p.bufs) == 0 && len(p.ev.Records) == 0 {
				a.put(p) // already emitted
			}
		case now.Sub(p.last) >= a.timeout:
			a.unmap(p)
			p.inFifo = false
			a.close(p, p.syscall, now, release)
		default:
			kept = append(kept, p)
		}
	}
	clear(a.fifo[len(kept):])
	a.fifo = kept
	// The newest event, when no record of another has come since it began,
	// is in neither the map nor the fifo.
	if p := a.last; p != nil && !p.closed && !p.inMap && now.Sub(p.last) >= a.timeout {
		a.close(p, p.syscall, now, release)
	}
	a.emitReady(now, release)
}

func (a *Assembler) emitReady(now time.Time, release func([]byte)) {
	n := 0
	for _, p := range a.ready {
		// An event that waited only because another was ahead of it
		// goes with it.
		if now.Sub(p.closedAt) < a.delay && (a.early == nil || !a.early(&p.ev, p.pid)) {
			break
		}
		a.emit(&p.ev, p.pid)
		a.done(p, release)
		n++
	}
	if n > 0 {
		copy(a.ready, a.ready[n:])
		clear(a.ready[len(a.ready)-n:])
		a.ready = a.ready[:len(a.ready)-n]
	}
}

// oldestHeld returns when the oldest event held for the delay closed; ok
// is false when none is held.
func (a *Assembler) oldestHeld() (closedAt time.Time, ok bool) {
	if len(a.ready) == 0 {
		return time.Time{}, false
	}
	return a.ready[0].closedAt, true
}

// Flush closes and emits every event (at shutdown).
func (a *Assembler) Flush(release func([]byte)) {
	far := time.Now().Add(a.timeout + a.delay + time.Hour)
	a.Expire(far, release)
	a.emitReady(far.Add(a.delay+time.Hour), release)
}

func (a *Assembler) get() *pending {
	if n := len(a.free); n > 0 {
		p := a.free[n-1]
		a.free = a.free[:n-1]
		return p
	}
	return &pending{pid: -1}
}

// maxFree is how many emitted events the assembler keeps for reuse. The
// events held for the delay come back to it at once, and an event made anew
// grows its slices again: at 75,000 events/s and a 100 ms delay, 7,500 are
// held.
const maxFree = 16384

func (a *Assembler) put(p *pending) {
	if a.last == p {
		a.last = nil
	}
	p.syscall, p.closed, p.inFifo, p.serial, p.pid = false, false, false, 0, -1
	p.ev.Partial = false
	if len(a.free) < maxFree {
		a.free = append(a.free, p)
	}
}
