package queue

import "time"

// Push adds a copy of data to the queue. It never blocks: when the queue is
// full it drops the oldest items, and the next item Read returns counts them
// in Lost. Data is copied; the caller may reuse it at once. Pushing to a
// closed queue drops the item and counts it.
//
// Push waits for nothing but the queue's lock, which Read holds while it
// copies out one batch (at most 1 MiB from memory), and it takes no longer than a
// memory copy unless memory is full: it then moves the oldest items to the
// spool, handing the kernel 64 KiB at a time (a write to the page cache, no
// fsync). In steady state it allocates nothing.
func (q *Queue) Push(data []byte) {
	q.mu.Lock()
	q.push(data)
	q.wake()
	q.mu.Unlock()
}

// PushAll pushes each of items in order, as Push does, under one hold of
// the queue's lock, so that a reader sees all of them or none: the router
// pushes the kept records of one event together.
func (q *Queue) PushAll(items [][]byte) {
	q.mu.Lock()
	if n := len(items); !q.closed && q.roomFor(items) {
		for _, data := range items {
			q.mem.push(data)
		}
		q.peak = max(q.peak, int64(q.mem.used))
		q.stats.Pushed += uint64(n)
		q.nextSeq += uint64(n)
		q.st.put(offPushed, q.nextSeq-1)
	} else {
		for _, data := range items {
			q.push(data)
		}
	}
	q.wake()
	q.mu.Unlock()
}

// roomFor makes room in memory for all of items at once, as pushing them
// one by one would, and reports whether it did. It declines (and leaves
// the queue as it was) when one push at a time has more to do: a spool to
// move items to, or an item memory cannot hold.
func (q *Queue) roomFor(items [][]byte) bool {
	limit := int(q.lim.Memory)
	n := 0
	for _, data := range items {
		if len(data) > maxItemLen || len(data) > limit {
			return false
		}
		n += len(data)
	}
	if q.mem.grow(n, limit) {
		return true // the usual case: room as it is
	}
	if q.sp != nil || n > limit {
		return false
	}
	q.dropFor(n)
	return q.mem.grow(n, limit)
}

// dropFor drops the oldest items of a queue without a spool until n more
// bytes fit in memory, and accounts for them as one run.
func (q *Queue) dropFor(n int) {
	first := q.memHead
	for q.mem.used+n > int(q.lim.Memory) {
		q.mem.pop()
		q.memHead++
	}
	if q.memHead > first {
		q.lose(first, q.memHead-1, &q.stats.Dropped.Full, true)
	}
}

// push is Push with q.mu held.
func (q *Queue) push(data []byte) {
	if q.closed {
		q.stats.Dropped.Closed++
		return
	}
	q.stats.Pushed++
	if !q.makeRoom(len(data)) {
		q.stats.Dropped.TooLarge++
		q.gaps = addGap(q.gaps, q.nextSeq, q.nextSeq, 1, 0, q.readSeq)
		q.st.putGaps(q.gaps)
		return
	}
	seq := q.nextSeq
	q.nextSeq++
	q.st.put(offPushed, seq)
	if int64(len(data)) <= q.lim.Memory {
		q.mem.push(data)
		q.peak = max(q.peak, int64(q.mem.used))
		return
	}
	// Straight to the spool: too big for memory, which makeRoom emptied so
	// that the spool stays in order.
	lost, err := q.sp.appendItem(seq, data, nil)
	q.memHead = q.nextSeq
	if err != nil {
		q.spoolFailed(lost, seq, err)
	}
}

// wake tells a waiting Read that items arrived; q.mu is held.
func (q *Queue) wake() {
	if q.waiting {
		q.waiting = false
		select {
		case q.notify <- struct{}{}:
		default:
		}
	}
}

// makeRoom frees space for an item of n bytes and reports whether it can be
// queued at all.
func (q *Queue) makeRoom(n int) bool {
	if n > maxItemLen {
		return false
	}
	if int64(n) > q.lim.Memory {
		if q.sp == nil || int64(n)+frameHeaderLen+fileHeaderLen+frameHeaderLen > q.lim.Spool {
			return false
		}
		for q.mem.count > 0 {
			q.evict()
		}
		q.spoolRoom(int64(n) + frameHeaderLen)
		return true
	}
	if q.sp == nil {
		q.dropFor(n)
	}
	for !q.mem.grow(n, int(q.lim.Memory)) {
		q.evict()
	}
	return true
}

// evict moves the oldest memory item to the spool, or drops it if there is
// no spool.
func (q *Queue) evict() {
	seq := q.memHead
	a, b := q.mem.front()
	if q.sp == nil {
		q.mem.pop()
		q.memHead++
		q.lose(seq, seq, &q.stats.Dropped.Full, true)
		return
	}
	q.spoolRoom(int64(frameHeaderLen + len(a) + len(b)))
	lost, err := q.sp.appendItem(seq, a, b)
	q.mem.pop()
	q.memHead++
	if err != nil {
		q.spoolFailed(lost, seq, err)
	}
}

// spoolRoom drops the oldest spool segments until n more bytes fit.
func (q *Queue) spoolRoom(n int64) {
	sp := q.sp
	// A new segment costs a file header and, when sealed, a trailer.
	n += fileHeaderLen + frameHeaderLen
	for len(sp.segs) > 0 && sp.bytes+n > sp.limit {
		s := sp.dropHead()
		q.lose(s.first, s.last, &q.stats.Dropped.Full, true)
	}
}

// spoolFailed counts the items (kept, to] that a failed spool write lost.
func (q *Queue) spoolFailed(kept, to uint64, err error) {
	lost := q.lose(kept+1, to, &q.stats.Dropped.SpoolError, false)
	q.logError("spool write failed; copies dropped", "error", err, "lost", lost)
}

// lose records that the items first..last are gone, and returns how many
// of them were not committed. Those the reader had not been given are
// counted in reason and reported in the next item's Lost. With inflight,
// those it had been given are kept apart: they count (as full) only if it
// rewinds; without, they count at once.
func (q *Queue) lose(first, last uint64, reason *uint64, inflight bool) uint64 {
	lo := max(first, q.commit+1)
	var unread, read uint64
	if last >= lo {
		if inflight && q.readSeq > lo {
			read = min(last, q.readSeq-1) - lo + 1
		}
		unread = last - lo + 1 - read
	}
	*reason += unread
	q.gaps = addGap(q.gaps, first, q.nextItem(last), unread, read, q.readSeq)
	q.st.putGaps(q.gaps)
	q.wakeEmpty()
	return unread + read
}

// logError logs at most one error every ten seconds: errors of the spool
// happen on the per-record path.
func (q *Queue) logError(msg string, args ...any) {
	if now := time.Now(); now.Sub(q.errLog) >= 10*time.Second {
		q.errLog = now
		q.log.Error(msg, append(args, "dir", q.sp.dir)...)
	}
}

// nextItem returns the seq of the oldest item held after seq, or the seq
// the next Push will get.
func (q *Queue) nextItem(seq uint64) uint64 {
	if q.sp != nil {
		for _, s := range q.sp.segs {
			if s.last > seq && s.last >= s.first {
				return max(s.first, seq+1)
			}
		}
	}
	if q.mem.count > 0 && seq < q.nextSeq-1 {
		return max(q.memHead, seq+1)
	}
	return q.nextSeq
}
