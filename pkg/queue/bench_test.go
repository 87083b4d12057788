package queue_test

import (
	"context"
	"sync"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// benchRecord is a typical SYSCALL record line, 300 bytes.
var benchRecord = []byte(`type=SYSCALL msg=audit(1700000000.123:4567): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c8a4b2a0 a1=55d0c8a4b2d0 a2=55d0c8a4b300 a3=8 items=2 ppid=1234 pid=5678 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key="exec"`)

// BenchmarkPush pushes into a queue whose reader keeps up: the memory part
// only, committed every 1024 items.
func BenchmarkPush(b *testing.B) {
	q := open(b, "", queue.Limits{Memory: 4 << 20})
	defer q.Close()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for i := 1; b.Loop(); i++ {
		q.Push(benchRecord)
		if i%1024 == 0 {
			q.Commit(uint64(i))
		}
	}
}

// BenchmarkPushFull pushes into a full memory-only queue: every Push drops
// the oldest item.
func BenchmarkPushFull(b *testing.B) {
	q := open(b, "", queue.Limits{Memory: 1 << 20})
	defer q.Close()
	for range 10000 {
		q.Push(benchRecord)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		q.Push(benchRecord)
	}
}

// BenchmarkPushSpool pushes into a queue whose memory is full and whose
// reader is stalled: every Push moves the oldest item to the spool, and the
// spool drops its oldest segment when full.
func BenchmarkPushSpool(b *testing.B) {
	q := open(b, b.TempDir(), queue.Limits{Memory: 1 << 20, Spool: 64 << 20})
	defer q.Close()
	for range 10000 {
		q.Push(benchRecord)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		q.Push(benchRecord)
	}
}

// BenchmarkPushReadCommit pushes, reads and commits in one goroutine, in
// batches of 64.
func BenchmarkPushReadCommit(b *testing.B) {
	q := open(b, "", queue.Limits{Memory: 4 << 20})
	defer q.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for i := 1; b.Loop(); i++ {
		q.Push(benchRecord)
		if i%64 == 0 {
			items, err := q.Read(ctx, 64)
			if err != nil || len(items) != 64 {
				b.Fatalf("Read = %d items, %v", len(items), err)
			}
			q.Commit(items[63].Seq)
		}
	}
}

// BenchmarkPushReadCommitParallel pushes from one goroutine while another
// reads and commits, as the router and a delivery target do.
func BenchmarkPushReadCommitParallel(b *testing.B) {
	q := open(b, "", queue.Limits{Memory: 4 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			items, err := q.Read(ctx, 256)
			if err != nil {
				return
			}
			q.Commit(items[len(items)-1].Seq)
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		q.Push(benchRecord)
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	q.Close()
	if st := q.Stats(); st.Dropped.Full != 0 {
		b.Logf("dropped %d of %d", st.Dropped.Full, st.Pushed)
	}
}

// BenchmarkReadSpool reads back and commits items from the spool.
func BenchmarkReadSpool(b *testing.B) {
	q := open(b, b.TempDir(), queue.Limits{Memory: 64 << 10, Spool: 1 << 30})
	defer q.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchRecord)))
	pushed := 0
	for b.Loop() {
		if pushed == 0 {
			b.StopTimer()
			for range 100000 {
				q.Push(benchRecord)
			}
			pushed = 100000 - 64<<10/len(benchRecord)
			b.StartTimer()
		}
		items, err := q.Read(ctx, 1)
		if err != nil {
			b.Fatal(err)
		}
		q.Commit(items[0].Seq)
		pushed--
	}
}

// BenchmarkIdleQueues measures the memory of open, idle, memory-only queues.
func BenchmarkIdleQueues(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		qs := make([]*queue.Queue, 10000)
		for i := range qs {
			qs[i] = open(b, "", queue.Limits{Memory: 4 << 20})
		}
		for _, q := range qs {
			q.Close()
		}
	}
}
