package queue_test

import (
	"context"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// BenchmarkPushAllStalled pushes events of three records into a full 1 MiB
// memory queue whose reader has read a window of 256 items and never
// commits them: a delivery target that stopped answering.
func BenchmarkPushAllStalled(b *testing.B) {
	q := open(b, "", queue.Limits{Memory: 1 << 20})
	defer closeQueue(b, q)
	ev := [][]byte{rec(1), rec(2), rec(3)}
	for range 20000 {
		q.PushAll(ev)
	}
	if _, err := q.Read(context.Background(), 256); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		q.PushAll(ev)
	}
	b.StopTimer()
	if s := q.Stats(); s.Dropped.Full == 0 {
		b.Fatalf("nothing dropped: %+v", s)
	}
}
