package queue_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// rec is the record pushed as the n-th item of a test.
func rec(n int) []byte {
	return fmt.Appendf(nil, "type=SYSCALL msg=audit(1700000000.%03d:%06d): n=%06d", n%1000, n, n)
}

// got is what a test read: an item with its Data copied.
type got struct {
	Seq  uint64
	Data string
	Lost uint64
}

func open(t testing.TB, dir string, lim queue.Limits) *queue.Queue {
	t.Helper()
	q, err := queue.Open(dir, lim, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return q
}

func closeQueue(t testing.TB, q *queue.Queue) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func pushN(q *queue.Queue, from, to int) {
	for n := from; n <= to; n++ {
		q.Push(rec(n))
	}
}

// readAvailable reads until nothing is unread, in batches of batch items.
// It waits up to a second for the first batch (which may have to skip many
// spooled items first) and 50 ms for the next ones.
func readAvailable(t testing.TB, q *queue.Queue, batch int) []got {
	t.Helper()
	var all []got
	wait := time.Second
	for {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		items, err := q.Read(ctx, batch)
		cancel()
		if err == context.DeadlineExceeded {
			return all
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(items) == 0 || len(items) > batch {
			t.Fatalf("Read returned %d items, want 1..%d", len(items), batch)
		}
		for _, it := range items {
			all = append(all, got{it.Seq, string(it.Data), it.Lost})
		}
		wait = 50 * time.Millisecond
	}
}

// wantRange is what reading the items from..to pushed with rec gives, the
// first one carrying lost.
func wantRange(from, to int, lost uint64) []got {
	var w []got
	for n := from; n <= to; n++ {
		w = append(w, got{uint64(n), string(rec(n)), 0})
	}
	if len(w) > 0 {
		w[0].Lost = lost
	}
	return w
}

// checkAccounting checks that every pushed item was read once or counted
// lost, in order.
func checkAccounting(t testing.TB, items []got, pushed uint64) {
	t.Helper()
	var next, lost uint64 = 1, 0
	for _, it := range items {
		if it.Seq != next+it.Lost {
			t.Fatalf("item %d carries Lost %d after item %d", it.Seq, it.Lost, next-1)
		}
		lost += it.Lost
		next = it.Seq + 1
	}
	if next-1 != pushed {
		t.Fatalf("last item read is %d, want %d", next-1, pushed)
	}
}
