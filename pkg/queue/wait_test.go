package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// WaitEmpty returns when the reader commits the last item, in memory or
// spooled, not before; with its context's error when it ends first; and
// ErrClosed when the queue closes.
func TestWaitEmpty(t *testing.T) {
	for _, spool := range []int64{0, queue.MinSpool} {
		var dir string
		if spool > 0 {
			dir = t.TempDir()
		}
		q := open(t, dir, queue.Limits{Memory: 4096, Spool: spool})
		ctx := context.Background()
		if err := q.WaitEmpty(ctx); err != nil {
			t.Fatalf("spool %d: an empty queue: %v", spool, err)
		}
		pushN(q, 0, 200) // more than memory holds: some go to the spool
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		if err := q.WaitEmpty(short); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("spool %d: a queue nobody reads: %v, want the deadline", spool, err)
		}
		cancel()
		done := make(chan error, 1)
		go func() { done <- q.WaitEmpty(ctx) }()
		var last uint64
		for {
			items, err := q.Read(ctx, 16)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				t.Fatalf("spool %d: WaitEmpty returned (%v) with items left", spool, err)
			default:
			}
			last = items[len(items)-1].Seq
			q.Commit(last)
			if st := q.Stats(); st.MemoryItems+st.SpoolItems == 0 {
				break
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("spool %d: WaitEmpty: %v", spool, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("spool %d: WaitEmpty still waits on an empty queue (last seq %d)", spool, last)
		}
		pushN(q, 0, 1)
		go func() { done <- q.WaitEmpty(ctx) }()
		time.Sleep(10 * time.Millisecond)
		closeQueue(t, q)
		if err := <-done; !errors.Is(err, queue.ErrClosed) {
			t.Errorf("spool %d: WaitEmpty on a closed queue: %v, want ErrClosed", spool, err)
		}
	}
}
