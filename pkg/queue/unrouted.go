package queue

// Stamp is an audit record's header, audit(SEC.MSEC:SERIAL); the zero
// Stamp is unknown.
type Stamp struct {
	Sec    uint64
	Msec   uint32
	Serial uint64
}

// IsZero reports whether s is unknown.
func (s Stamp) IsZero() bool { return s == Stamp{} }

// Unrouted describes records of the host that the router left unrouted
// (its backlog overflowed): they are in the host log, but no container got
// a copy of them, and the router cannot know whose they were. First and
// Last are the headers of the first and last of them, as far as known.
type Unrouted struct {
	Records     uint64
	First, Last Stamp
}

// Then returns u followed by v: the records of both, from u's first to
// v's last (each side's other end when one is unknown).
func (u Unrouted) Then(v Unrouted) Unrouted {
	switch {
	case v.Records == 0:
		return u
	case u.Records == 0:
		return v
	}
	w := Unrouted{Records: u.Records + v.Records, First: u.First, Last: v.Last}
	if w.First.IsZero() {
		w.First = v.First
	}
	if w.Last.IsZero() {
		w.Last = u.Last
	}
	return w
}

// Unrouted records that the records u describes were never pushed: the
// router left them unrouted. The reader learns of them in the Unrouted of
// the next item pushed, as it learns of dropped copies in Lost, and they
// count in Stats.Dropped.RouterOverflow. It never blocks longer than Push;
// on a closed queue it does nothing.
func (q *Queue) Unrouted(u Unrouted) {
	if u.Records == 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.stats.Dropped.RouterOverflow += u.Records
	q.gaps = addUnrouted(q.gaps, q.nextSeq, u)
	q.st.putGaps(q.gaps)
}

// addUnrouted records u just before seq, the next item to be pushed: no
// gap lies beyond it.
func addUnrouted(gs []gap, seq uint64, u Unrouted) []gap {
	if n := len(gs); n > 0 && gs[n-1].seq == seq {
		gs[n-1].un = gs[n-1].un.Then(u)
		return gs
	}
	return append(gs, gap{seq: seq, un: u})
}
