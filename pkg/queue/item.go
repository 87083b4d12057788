package queue

import "context"

// Item is one copy waiting for delivery: a single audit record line in
// auditd's log format, without its trailing newline.
type Item struct {
	// Seq numbers items in the order they were pushed, starting at 1 for a
	// new queue and continuing across restarts for a spooled one.
	Seq uint64
	// Data is the record line. It must not be modified by the reader.
	// Queue.Read lends it: it stays valid until the next Read.
	Data []byte
	// Lost is the number of copies dropped (queue full) immediately before
	// this item. A reader that sees Lost > 0 tells the tenant in the stream,
	// before Data. Besides a full queue, it counts every other loss that
	// Queue.Stats reports in Dropped (a spool error, a kill, ...). Copies
	// dropped after the reader was given them and before it committed them
	// count only if it rewinds; a Lost the reader was given is given again
	// after a Rewind, until the item is committed.
	Lost uint64
	// Unrouted, when not nil, says that records of the host were left
	// unrouted (the router fell behind) immediately before this item, after
	// the Lost copies: they are in the host log, and some of them may have
	// been this container's. A reader tells the tenant in the stream, as it
	// does Lost, and it is given again after a Rewind the same way. It is
	// the reader's to keep.
	Unrouted *Unrouted
}

// Reader is what a delivery target drains. Read hands out items that have
// not been read yet, Commit removes delivered items, and Rewind makes every
// uncommitted item readable again (after a reconnect, for at-least-once
// delivery). *Queue implements it.
type Reader interface {
	// Read blocks until at least one unread item is available or ctx ends,
	// and returns at most max items, oldest first.
	Read(ctx context.Context, max int) ([]Item, error)
	// Commit marks every item with Seq <= seq as delivered and frees it.
	Commit(seq uint64)
	// Rewind moves the read position back to the oldest uncommitted item.
	Rewind()
}
