package deliver

import (
	"context"
	"sync"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// LatencyBounds are the latency histogram's upper bounds, in seconds.
var LatencyBounds = []float64{0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// latencyReader is the queue as a delivery target drains it, measuring for
// each delivered copy the time from the record's event time (its header,
// millisecond resolution) to its commit: acknowledged by a remote auditd,
// or written to a file target.
type latencyReader struct {
	q *queue.Queue

	mu      sync.Mutex // guards the fields below
	pending []stamp    // read and not yet committed, in Seq order
	last    uint64     // highest Seq recorded in pending
	count   uint64
	sum     float64
	buckets []uint64 // cumulative at snapshot time; per-bucket here
}

type stamp struct {
	seq uint64
	at  time.Time
}

func newLatencyReader(q *queue.Queue) *latencyReader {
	return &latencyReader{q: q, buckets: make([]uint64, len(LatencyBounds))}
}

func (l *latencyReader) Read(ctx context.Context, max int) ([]queue.Item, error) {
	items, err := l.q.Read(ctx, max)
	l.mu.Lock()
	for _, it := range items {
		if it.Seq <= l.last {
			continue // re-read after a rewind: already stamped
		}
		l.last = it.Seq
		if sec, msec, ok := record.LineTime(it.Data); ok {
			l.pending = append(l.pending, stamp{it.Seq, time.Unix(int64(sec), int64(msec)*1e6)})
		}
	}
	l.mu.Unlock()
	return items, err
}

func (l *latencyReader) Commit(seq uint64) {
	l.q.Commit(seq)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.pending {
		if s.seq > seq {
			break
		}
		d := now.Sub(s.at).Seconds()
		l.count++
		l.sum += d
		for i, b := range LatencyBounds {
			if d <= b {
				l.buckets[i]++
				break
			}
		}
		n++
	}
	l.pending = append(l.pending[:0], l.pending[n:]...)
}

func (l *latencyReader) Rewind() { l.q.Rewind() }

// Latency is a histogram of delivery latencies: Count copies took Sum
// seconds in all; Buckets[i] of them took at most LatencyBounds[i].
type Latency struct {
	Count   uint64
	Sum     float64
	Buckets []uint64 // cumulative
}

func (l *latencyReader) histogram() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := Latency{Count: l.count, Sum: l.sum, Buckets: make([]uint64, len(LatencyBounds))}
	var cum uint64
	for i := range LatencyBounds {
		cum += l.buckets[i]
		h.Buckets[i] = cum
	}
	return h
}
