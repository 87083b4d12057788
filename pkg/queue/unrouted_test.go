package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// readOnce reads one batch of at most n items, waiting up to a second.
func readOnce(t *testing.T, q *queue.Queue, n int) []queue.Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	items, err := q.Read(ctx, n)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return items
}

var (
	overflowA = queue.Unrouted{Records: 512,
		First: queue.Stamp{Sec: 1700000000, Msec: 5, Serial: 100},
		Last:  queue.Stamp{Sec: 1700000000, Msec: 9, Serial: 300}}
	overflowB = queue.Unrouted{Records: 100,
		First: queue.Stamp{Sec: 1700000001, Msec: 0, Serial: 301},
		Last:  queue.Stamp{Sec: 1700000002, Msec: 250, Serial: 400}}
	overflowAB = queue.Unrouted{Records: 612, First: overflowA.First, Last: overflowB.Last}
)

// TestUnroutedGap: records the router left unrouted are a gap before the
// next item pushed, told in its Unrouted (with their count and the headers
// of the first and last) and not in Lost; two overflows before one item
// merge; the gap is told again after a Rewind until that item is
// committed, and counts in Dropped.RouterOverflow.
func TestUnroutedGap(t *testing.T) {
	q := open(t, "", queue.Limits{Memory: 1 << 20})
	defer closeQueue(t, q)
	pushN(q, 1, 2)
	q.Unrouted(overflowA)
	q.Unrouted(overflowB)
	q.Unrouted(queue.Unrouted{}) // nothing: no gap
	pushN(q, 3, 4)
	for round := range 2 {
		items := readOnce(t, q, 10)
		if len(items) != 4 {
			t.Fatalf("round %d: read %d items, want 4", round, len(items))
		}
		for i, it := range items {
			var want *queue.Unrouted
			if it.Seq == 3 {
				want = &overflowAB
			}
			if diff := cmp.Diff(want, it.Unrouted); diff != "" || it.Lost != 0 {
				t.Errorf("round %d: item %d Lost %d Unrouted (-want +got):\n%s", round, i, it.Lost, diff)
			}
		}
		q.Rewind()
	}
	readOnce(t, q, 10)
	q.Commit(4)
	pushN(q, 5, 5)
	if items := readOnce(t, q, 10); items[0].Unrouted != nil {
		t.Errorf("after the commit item 5 still says %+v unrouted", *items[0].Unrouted)
	}
	st := q.Stats()
	if st.Dropped.RouterOverflow != 612 || st.Dropped.Total() != 612 || st.Pushed != 5 {
		t.Errorf("Stats = %+v, want 612 router-overflow drops, 5 pushed", st)
	}
}

// TestUnroutedAfterDrops: a full queue that drops the items around an
// unrouted gap keeps both counts for the next item that survives, and an
// unrouted gap whose item was read and then dropped is told again only if
// the reader rewinds.
func TestUnroutedAfterDrops(t *testing.T) {
	q := open(t, "", queue.Limits{Memory: 4 * int64(len(rec(1)))})
	defer closeQueue(t, q)
	pushN(q, 1, 2)
	q.Unrouted(overflowA)
	pushN(q, 3, 10) // 1..6 dropped: 7..10 fit
	items := readOnce(t, q, 10)
	if items[0].Seq != 7 || items[0].Lost != 6 || items[0].Unrouted == nil || *items[0].Unrouted != overflowA {
		t.Fatalf("first item %d Lost %d Unrouted %v, want 7 with Lost 6 and %+v", items[0].Seq, items[0].Lost, items[0].Unrouted, overflowA)
	}
	// Read and not committed; the next pushes drop 7..10 in flight.
	pushN(q, 11, 14)
	q.Rewind()
	items = readOnce(t, q, 10)
	if items[0].Seq != 11 || items[0].Lost != 10 || items[0].Unrouted == nil || *items[0].Unrouted != overflowA {
		t.Fatalf("after the rewind the first item is %d Lost %d Unrouted %v, want 11 with Lost 10 and %+v", items[0].Seq, items[0].Lost, items[0].Unrouted, overflowA)
	}
	q.Commit(14)
	if st := q.Stats(); st.Dropped.RouterOverflow != 512 || st.Dropped.Full != 10 {
		t.Errorf("Stats.Dropped = %+v, want 512 router-overflow, 10 full", st.Dropped)
	}
}

// TestUnroutedSurvivesRestart: a spooled queue keeps an untold unrouted
// gap across Close and Open, and tells it with the next item.
func TestUnroutedSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, spoolLimits())
	pushN(q, 1, 3)
	q.Unrouted(overflowA)
	closeQueue(t, q)
	q = open(t, dir, spoolLimits())
	defer closeQueue(t, q)
	pushN(q, 4, 4)
	items := readOnce(t, q, 10)
	if len(items) != 4 {
		t.Fatalf("read %d items, want 4", len(items))
	}
	if u := items[3].Unrouted; u == nil || *u != overflowA || items[3].Lost != 0 {
		t.Errorf("item 4 after the restart: Lost %d Unrouted %v, want %+v", items[3].Lost, u, overflowA)
	}
}
