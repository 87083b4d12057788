package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// TestConcurrentPushRead pushes from one goroutine while another reads and
// commits, with limits small enough that items are spooled and dropped.
// Every item must arrive once, in order, or be counted lost.
func TestConcurrentPushRead(t *testing.T) {
	size := int64(len(rec(1)))
	for _, tc := range []struct {
		name   string
		dir    string
		lim    queue.Limits
		rewind bool // rewind instead of committing every 7th batch
	}{
		{"memory", "", queue.Limits{Memory: 100 * size}, false},
		{"spool", t.TempDir(), queue.Limits{Memory: 100 * size, Spool: queue.MinSpool * 4}, false},
		{"memory rewind", "", queue.Limits{Memory: 100 * size}, true},
		{"spool rewind", t.TempDir(), queue.Limits{Memory: 100 * size, Spool: queue.MinSpool}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 30000
			q := open(t, tc.dir, tc.lim)
			defer closeQueue(t, q)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 1; i <= n; i++ {
					q.Push(rec(i))
					if i%1000 == 0 {
						time.Sleep(time.Millisecond) // let the reader catch up at times
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var next, lost, read, committed uint64 = 1, 0, 0, 0
			for batch := 1; next <= n || committed < n; batch++ {
				items, err := q.Read(ctx, 50)
				if err != nil {
					t.Fatalf("Read after item %d: %v", next-1, err)
				}
				for _, it := range items {
					if it.Seq != next+it.Lost {
						t.Fatalf("item %d carries Lost %d after item %d", it.Seq, it.Lost, next-1)
					}
					if want := string(rec(int(it.Seq))); string(it.Data) != want {
						t.Fatalf("item %d is %q, want %q", it.Seq, it.Data, want)
					}
					lost += it.Lost
					next = it.Seq + 1
					read++
				}
				if tc.rewind && batch%7 == 0 && next <= n {
					q.Rewind()
					next = committed + 1
					continue
				}
				committed = items[len(items)-1].Seq
				q.Commit(committed)
			}
			wg.Wait()
			st := q.Stats()
			if st.Pushed != n || st.Committed+st.Dropped.Total() != n {
				t.Errorf("Stats = %+v, want committed and dropped to add up to %d", st, n)
			}
			if !tc.rewind && (st.Committed != read || st.Dropped.Total() != lost || read+lost != n) {
				t.Errorf("read %d, told %d lost; Stats = %+v", read, lost, st)
			}
			t.Logf("read %d, lost %d", read, lost)
		})
	}
}
