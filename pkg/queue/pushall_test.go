package queue_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// TestPushAllIsPushInOrder pushes the same random batches into two queues,
// one with PushAll and one with Push item by item, reading from both at the
// same points, and wants the same items, losses and figures from both: with
// memory to spare, with memory full (the oldest dropped), with a spool, and
// with batches larger than memory.
func TestPushAllIsPushInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lim   queue.Limits
		spool bool
	}{
		{"memory to spare", queue.Limits{Memory: 1 << 20}, false},
		{"memory full", queue.Limits{Memory: 2 << 10}, false},
		{"tiny memory", queue.Limits{Memory: 200}, false},
		{"spool", queue.Limits{Memory: 2 << 10, Spool: queue.MinSpool}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var dirA, dirB string
			if tc.spool {
				dirA, dirB = t.TempDir(), t.TempDir()
			}
			a, b := open(t, dirA, tc.lim), open(t, dirB, tc.lim)
			defer closeQueue(t, a)
			defer closeQueue(t, b)
			rnd := rand.New(rand.NewPCG(1, 2))
			n := 0
			for round := range 300 {
				batch := make([][]byte, rnd.IntN(9))
				for i := range batch {
					n++
					batch[i] = append(rec(n), make([]byte, rnd.IntN(150))...)
				}
				a.PushAll(batch)
				for _, data := range batch {
					b.Push(data)
				}
				if round%7 == 6 {
					ga, gb := readQueued(t, a), readQueued(t, b)
					if diff := cmp.Diff(gb, ga); diff != "" {
						t.Fatalf("round %d: PushAll read (-Push +PushAll):\n%s", round, diff)
					}
				}
			}
			sa, sb := a.Stats(), b.Stats()
			// The peak is taken at the end of each call: pushed one by
			// one, a full queue can peak a few bytes higher in between.
			if sa.PeakMemoryBytes > sb.PeakMemoryBytes || sa.PeakMemoryBytes < sa.MemoryBytes {
				t.Errorf("PeakMemoryBytes: PushAll %d, Push %d, held now %d", sa.PeakMemoryBytes, sb.PeakMemoryBytes, sa.MemoryBytes)
			}
			sa.PeakMemoryBytes, sb.PeakMemoryBytes = 0, 0
			if diff := cmp.Diff(sb, sa); diff != "" {
				t.Errorf("Stats (-Push +PushAll):\n%s", diff)
			}
			if tc.name == "memory full" && sa.Dropped.Full == 0 {
				t.Errorf("memory full dropped nothing: %+v", sa)
			}
		})
	}
}

// readQueued reads and commits, 5 at a time, every item q holds.
func readQueued(t *testing.T, q *queue.Queue) []got {
	t.Helper()
	var all []got
	for {
		if s := q.Stats(); s.MemoryItems+s.SpoolItems == 0 {
			return all
		}
		items, err := q.Read(context.Background(), 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			all = append(all, got{it.Seq, string(it.Data), it.Lost})
		}
		q.Commit(items[len(items)-1].Seq)
	}
}
