package queue

// Stats are a queue's figures. The counters start at zero when the queue is
// opened; the queued figures include items read but not yet committed.
type Stats struct {
	MemoryItems int64 // items held in memory
	MemoryBytes int64 // bytes of the items held in memory
	// PeakMemoryBytes is the most bytes held in memory at once since the
	// queue was opened: the largest burst its reader fell behind by.
	PeakMemoryBytes int64
	SpoolItems      int64 // items held in the spool, not committed
	SpoolBytes      int64 // bytes of the spool's segment files
	// Pushed counts calls to Push on an open queue.
	Pushed uint64
	// Committed counts items delivered: committed, including those
	// dropped after Read handed them out and before the Commit that
	// covered them.
	Committed uint64
	// Dropped counts the items lost, by reason.
	Dropped Drops
}

// Drops counts the copies a queue lost, by reason.
type Drops struct {
	// Full counts the oldest copies dropped to make room when memory and
	// spool were both full. A copy dropped after Read handed it out counts
	// when the reader rewinds instead of committing it.
	Full uint64
	// TooLarge counts copies bigger than the queue can hold at all.
	TooLarge uint64
	// SpoolError counts copies lost because writing the spool failed.
	SpoolError uint64
	// Corrupt counts spooled copies that could not be read back: damage
	// after a power loss, or a disk error.
	Corrupt uint64
	// Crash counts copies that were in memory when the previous run was
	// killed; Open finds them from the state file.
	Crash uint64
	// Closed counts copies pushed after Close, and copies in a queue
	// without a spool when it was closed.
	Closed uint64
	// RouterOverflow counts records of the host that the router left
	// unrouted while the queue was open (Queue.Unrouted): whose they were
	// is unknown, so every container counts all of them, and it bounds
	// the copies this one lost so.
	RouterOverflow uint64
}

// Total is the sum of the drops of every reason.
func (d Drops) Total() uint64 {
	return d.Full + d.TooLarge + d.SpoolError + d.Corrupt + d.Crash + d.Closed + d.RouterOverflow
}

// Stats returns the queue's figures.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := q.stats
	s.MemoryItems, s.MemoryBytes = int64(q.mem.count), int64(q.mem.used)
	s.PeakMemoryBytes = q.peak
	if q.sp != nil {
		s.SpoolItems, s.SpoolBytes = int64(q.sp.items(q.commit)), q.sp.bytes
	}
	return s
}
