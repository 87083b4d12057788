package queue

import "context"

// WaitEmpty blocks until every item pushed so far is committed (or lost),
// ctx ends (its error), or the queue is closed (ErrClosed). Items pushed
// meanwhile must be committed too: it waits for an empty queue, not for a
// point in it. It is how a container is drained before it goes.
func (q *Queue) WaitEmpty(ctx context.Context) error {
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return ErrClosed
		}
		if q.empty() {
			q.mu.Unlock()
			return nil
		}
		if q.emptied == nil {
			q.emptied = make(chan struct{})
		}
		ch := q.emptied
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-q.done:
		case <-ch:
		}
	}
}

// empty reports whether no item waits, in memory or in the spool; q.mu is
// held.
func (q *Queue) empty() bool {
	return q.mem.count == 0 && (q.sp == nil || q.sp.items(q.commit) == 0)
}

// wakeEmpty wakes the WaitEmpty calls when the queue is empty; q.mu is
// held. It is called where items go: Commit and losses.
func (q *Queue) wakeEmpty() {
	if q.emptied != nil && q.empty() {
		close(q.emptied)
		q.emptied = nil
	}
}
