package router

import (
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// assembler groups records into events by serial. An event closes on its EOE
// record; an event with no EOE closes when no record of it has arrived for
// the timeout. A syscall event (one with a SYSCALL record) that closes by
// timeout is marked Partial: its EOE never came. Records from several CPUs
// may interleave; they are grouped by serial regardless of order, and kept
// in arrival (kernel) order within an event. Nothing is reported lost.
//
// With a delay, closed events are held that long before they are emitted
// (on stock kernels, so that the process-events tracker has caught up with
// the processes the event names).
//
// The records stay in the batches they arrived in: an event holds a
// reference to the batch of each of its records until it is emitted.
type assembler struct {
	timeout time.Duration
	delay   time.Duration
	open    map[uint64]*pending // open events, but for last while it is the only one
	fifo    []*pending          // open events in order of arrival (may hold closed ones)
	ready   []*pending          // closed events waiting for the delay, in order
	free    []*pending
	last    *pending // the open event the last record went to, or a closed one
	emit    func(*pending)
	release func(*batch)
}

// pending is an event being assembled or waiting for its delay.
type pending struct {
	serial   uint64
	last     time.Time
	closedAt time.Time
	syscall  bool
	closed   bool
	inFifo   bool
	inMap    bool // in open
	ev       record.Event
	lines    [][]byte // each record's copy line, without its newline
	owners   []*batch // the batch each record is in (nil: none)
	pid      uint32   // from the SYSCALL record, when hasPID
	hasPID   bool
}

// newAssembler returns an assembler that calls emit for every closed event,
// delay after it closed, and release once for every record added with a
// batch, when its event has been emitted. The event and its records are
// valid only during the call to emit.
func newAssembler(timeout, delay time.Duration, emit func(*pending), release func(*batch)) *assembler {
	return &assembler{timeout: timeout, delay: delay, open: map[uint64]*pending{}, emit: emit, release: release}
}

// Add adds one record: r is parsed from line, its copy line without the
// newline, which b (if not nil) holds.
func (a *assembler) Add(r *record.Record, line []byte, b *batch, now time.Time) {
	if b != nil {
		b.refs++
	}
	if r.Serial == 0 {
		// No serial to group by: an event of its own.
		p := a.get()
		a.keep(p, r, line, b)
		a.close(p, false, now)
		return
	}
	// The records of an event mostly arrive one after another, and the
	// event closes before the next begins: then it never enters the map.
	p := a.last
	if p == nil || p.serial != r.Serial || p.closed {
		if p != nil && !p.closed && !p.inMap {
			a.open[p.serial], p.inMap = p, true // interleaved: may get more
		}
		if len(a.open) > 0 {
			p = a.open[r.Serial]
		} else {
			p = nil
		}
		if p == nil {
			p = a.get()
			p.serial, p.inFifo = r.Serial, true
			a.fifo = append(a.fifo, p)
		}
		a.last = p
	}
	p.last = now
	a.keep(p, r, line, b)
	if r.Type == record.TypeEOE {
		a.unmap(p)
		a.close(p, false, now)
		a.popClosed()
	}
}

// unmap takes p out of the open events.
func (a *assembler) unmap(p *pending) {
	if p.inMap {
		delete(a.open, p.serial)
		p.inMap = false
	}
}

func (a *assembler) keep(p *pending, r *record.Record, line []byte, b *batch) {
	if r.Type == record.TypeSyscall && !p.syscall {
		p.syscall = true
		// Read now, while the record is in the cache, not after the delay.
		if pid, ok := syscallPID(r.Text); ok {
			p.pid, p.hasPID = uint32(pid), true
		}
	}
	p.ev.Records = append(p.ev.Records, *r)
	p.lines = append(p.lines, line)
	p.owners = append(p.owners, b)
}

// popClosed recycles the closed events at the head of the fifo, so that in
// the usual case (events complete in order) the fifo stays short and no
// event is allocated.
func (a *assembler) popClosed() {
	n := 0
	for _, p := range a.fifo {
		if !p.closed {
			break
		}
		p.inFifo = false
		if len(p.ev.Records) == 0 {
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

// close emits p now (no delay) or queues it for the delay.
func (a *assembler) close(p *pending, partial bool, now time.Time) {
	p.ev.Partial, p.closed, p.closedAt = partial, true, now
	if a.delay > 0 {
		a.ready = append(a.ready, p)
		return
	}
	a.emit(p)
	a.done(p)
}

// done releases p's batches; p itself is recycled once out of the fifo.
func (a *assembler) done(p *pending) {
	for i, b := range p.owners {
		if b != nil {
			a.release(b)
		}
		p.owners[i] = nil
		p.lines[i] = nil
	}
	p.owners, p.lines = p.owners[:0], p.lines[:0]
	clear(p.ev.Records)
	p.ev.Records = p.ev.Records[:0]
	if !p.inFifo {
		a.put(p)
	}
}

// Expire closes events idle for the timeout and emits delayed events whose
// delay has passed. Call it regularly.
func (a *assembler) Expire(now time.Time) {
	n := 0
	for _, p := range a.fifo {
		if !p.closed {
			if now.Sub(p.last) < a.timeout {
				break
			}
			a.unmap(p)
			p.inFifo = false
			a.close(p, p.syscall, now)
			n++
			continue
		}
		p.inFifo = false
		if len(p.ev.Records) == 0 {
			a.put(p) // already emitted
		}
		n++
	}
	if n > 0 {
		copy(a.fifo, a.fifo[n:])
		clear(a.fifo[len(a.fifo)-n:])
		a.fifo = a.fifo[:len(a.fifo)-n]
	}
	a.emitReady(now)
}

func (a *assembler) emitReady(now time.Time) {
	n := 0
	for _, p := range a.ready {
		if now.Sub(p.closedAt) < a.delay {
			break
		}
		a.emit(p)
		a.done(p)
		n++
	}
	if n > 0 {
		copy(a.ready, a.ready[n:])
		clear(a.ready[len(a.ready)-n:])
		a.ready = a.ready[:len(a.ready)-n]
	}
}

// Flush closes and emits every event (at shutdown).
func (a *assembler) Flush() {
	far := time.Now().Add(a.timeout + a.delay + time.Hour)
	a.Expire(far)
	a.emitReady(far.Add(a.delay + time.Hour))
}

func (a *assembler) get() *pending {
	if n := len(a.free); n > 0 {
		p := a.free[n-1]
		a.free = a.free[:n-1]
		return p
	}
	return &pending{}
}

// maxFree is how many emitted events the assembler keeps for reuse. The
// events held for the delay come back to it at once, and an event made anew
// grows its slices again: at 75,000 events/s and a 100 ms delay, 7,500 are
// held, and more when the router falls behind for a moment and then takes
// several batches at once (16,384 was too few for that at 95,000 events/s).
// The list holds no more events than were once held at the same time.
const maxFree = 1 << 16

func (a *assembler) put(p *pending) {
	if a.last == p {
		a.last = nil
	}
	p.syscall, p.closed, p.inFifo, p.serial = false, false, false, 0
	p.pid, p.hasPID = 0, false
	p.ev.Partial = false
	if len(a.free) < maxFree {
		a.free = append(a.free, p)
	}
}
