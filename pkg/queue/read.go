package queue

import (
	"context"
	"io"
	"runtime"
)

// maxReadBytes bounds the Data one Read returns from memory (beyond its
// first item), so that a Read holds the queue's lock for a bounded time: a
// memory copy of 1 MiB. A reader that fell behind takes the lock once per
// MiB, not once per 256 KiB: on a busy host the router pushes all the
// time, and each time the reader waits for the lock it falls further
// behind. maxSpoolReadBytes bounds what one Read takes from the spool,
// which may mean reading the disk under the lock.
const (
	maxReadBytes      = 1 << 20
	maxSpoolReadBytes = 256 << 10
)

// Read blocks until at least one unread item is available, ctx ends or the
// queue is closed (ErrClosed), and returns at most max items, oldest first
// (max < 1 counts as 1). The returned slice and the Data of its items belong
// to the queue and stay valid until the next call to Read: a reader that
// keeps them longer copies them.
func (q *Queue) Read(ctx context.Context, max int) ([]Item, error) {
	if max < 1 {
		max = 1
	}
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return nil, ErrClosed
		}
		items, more := q.collect(max)
		if len(items) > 0 {
			q.mu.Unlock()
			return items, nil
		}
		if more {
			// Skipping spooled items took the lock long enough; let Push
			// have it, then go on.
			q.mu.Unlock()
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			runtime.Gosched()
			continue
		}
		q.waiting = true
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-q.done:
		case <-q.notify:
		}
	}
}

// collect gathers up to limit unread items: from the spool first, which
// holds the older ones, then from memory. With no items, more says that it
// stopped early, and there may be some.
func (q *Queue) collect(limit int) (items []Item, more bool) {
	q.out, q.outBuf = q.out[:0], q.outBuf[:0]
	q.readSeq = max(q.readSeq, q.commit+1)
	if q.sp != nil {
		if done, yield := q.collectSpool(limit); !done {
			return q.out, yield
		}
	}
	q.readSeq = max(q.readSeq, q.memHead)
	if q.readSeq >= q.nextSeq {
		return q.out, false
	}
	c := q.mem.seek(int(q.readSeq - q.memHead))
	for len(q.out) < limit && len(q.outBuf) < maxReadBytes && q.readSeq < q.nextSeq {
		a, b := q.mem.at(c)
		q.add(q.readSeq, a, b)
		c = q.mem.seek(c.i + 1)
	}
	return q.out, false
}

// collectSpool adds spooled items to q.out, and reports whether it read
// all of them and there is room for more, or else whether it stopped to
// yield the lock.
func (q *Queue) collectSpool(limit int) (done, yield bool) {
	budget := maxSpoolReadBytes
	for {
		last, ok := q.sp.last()
		if !ok || q.readSeq > last {
			return true, false
		}
		if len(q.out) >= limit || len(q.outBuf) >= maxSpoolReadBytes {
			return false, false
		}
		f, err := q.sp.next(q.readSeq, &budget)
		if err == io.EOF {
			return true, false
		}
		if err == errYield {
			return false, true
		}
		if err != nil {
			q.spoolUnreadable(err)
			continue
		}
		q.add(f.seq, f.data, nil)
	}
}

// spoolUnreadable drops the rest of the segment being read when a frame in
// it cannot be read: after a power loss or a disk error. The spool keeps
// going with the next segment.
func (q *Queue) spoolUnreadable(err error) {
	s := q.sp.rseg
	good := q.sp.rexp - 1
	from, to := good+1, s.last
	s.last = good
	q.sp.closeReader()
	lost := q.lose(from, to, &q.stats.Dropped.Corrupt, false)
	q.logError("spool segment unreadable; the rest of it is dropped", "error", err, "lost", lost)
}

// add appends item seq with data a+b to q.out, copying the data.
func (q *Queue) add(seq uint64, a, b []byte) {
	start := len(q.outBuf)
	q.outBuf = append(append(q.outBuf, a...), b...)
	it := Item{Seq: seq, Data: q.outBuf[start:len(q.outBuf):len(q.outBuf)]}
	if len(q.gaps) > 0 {
		it.Lost, it.Unrouted = missingBefore(q.gaps, seq)
	}
	q.out = append(q.out, it)
	q.readSeq = seq + 1
}

// Commit marks every item with Seq <= seq as delivered and frees it. It
// also tells the queue that the tenant learnt of the losses before them.
func (q *Queue) Commit(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || seq <= q.commit {
		return
	}
	seq = min(seq, q.nextSeq-1)
	if q.sp != nil {
		q.stats.Committed += q.sp.items(q.commit) - q.sp.items(seq)
		q.sp.commit(seq)
	}
	for q.mem.count > 0 && q.memHead <= seq {
		q.mem.pop()
		q.memHead++
		q.stats.Committed++
	}
	q.mem.release(ringKeep)
	q.commit = seq
	q.st.put(offCommitted, seq)
	if len(q.gaps) > 0 {
		// Items dropped after they were read and before this commit were
		// delivered.
		var n, m uint64
		q.gaps, n = dropGaps(q.gaps, seq)
		if seq+1 >= q.readSeq {
			q.gaps, m = deliveredGaps(q.gaps)
		}
		q.stats.Committed += n + m
		q.st.putGaps(q.gaps)
	}
	q.wakeEmpty()
}

// ringKeep is the memory buffer an emptied queue keeps; a bigger one, grown
// for a burst, is freed.
const ringKeep = 64 << 10

// Rewind moves the read position back to the oldest uncommitted item, so
// that Read hands out again what was read but not committed.
func (q *Queue) Rewind() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.readSeq = q.commit + 1
	if n := rewindGaps(q.gaps); n > 0 {
		q.stats.Dropped.Full += n
	}
	if q.sp != nil {
		q.sp.closeReader()
	}
}
