package remote

// entry is one sequence number of a connection: a frame waiting for its
// reply, or a record that was not sent (skipped) and so is acked already.
type entry struct {
	seq       uint32
	item      uint64 // queue item sequence, 0 for heartbeats and notices
	last      bool   // the item's record frame, after which it can be committed
	acked     bool
	notice    bool
	heartbeat bool
	v         verdict
}

// inflight is the window: entries in sequence order. Sequence numbers of
// consecutive entries differ by exactly one, so an ack finds its entry by
// subtraction.
type inflight struct {
	q       []entry
	head    int
	waiting int // entries not acked: replies still to come
}

func (f *inflight) len() int { return len(f.q) - f.head }

func (f *inflight) push(e entry) {
	f.q = append(f.q, e)
	if !e.acked {
		f.waiting++
	}
}

// ack marks the entry with sequence seq as written. It reports false for
// a sequence number that is not waiting for a reply.
func (f *inflight) ack(seq uint32) bool {
	if f.len() == 0 {
		return false
	}
	i := int(seq - f.q[f.head].seq) // wraps like the wire counter
	if i >= f.len() {
		return false
	}
	e := &f.q[f.head+i]
	if e.seq != seq || e.acked {
		return false
	}
	e.acked = true
	f.waiting--
	return true
}

// popped is what leaving the window produced.
type popped struct {
	commit     uint64 // highest item sequence now delivered, 0 for none
	records    uint64 // records acked (skipped ones excluded)
	skipped    uint64
	truncated  uint64
	replaced   uint64
	notices    uint64
	heartbeats uint64
}

// pop removes acked entries from the head.
func (f *inflight) pop() popped {
	var p popped
	for f.head < len(f.q) && f.q[f.head].acked {
		e := f.q[f.head]
		f.head++
		if e.notice {
			p.notices++
		}
		if e.heartbeat {
			p.heartbeats++
		}
		if !e.last {
			continue
		}
		p.commit = e.item
		switch {
		case e.v&skip != 0:
			p.skipped++
			continue
		case e.v&truncated != 0:
			p.truncated++
		}
		if e.v&replaced != 0 {
			p.replaced++
		}
		p.records++
	}
	f.compact()
	return p
}

// unacked counts records that were sent and not yet acknowledged.
func (f *inflight) unacked() uint64 {
	var n uint64
	for _, e := range f.q[f.head:] {
		if e.last && !e.acked {
			n++
		}
	}
	return n
}

func (f *inflight) compact() {
	switch {
	case f.head == len(f.q):
		f.q, f.head = f.q[:0], 0
	case f.head > 1024 && f.head > len(f.q)/2:
		n := copy(f.q, f.q[f.head:])
		f.q, f.head = f.q[:n], 0
	}
}
