package deliver_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/deliver"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// countingReader is a queue as a target drains it, counting the reads
// that returned copies.
type countingReader struct {
	q *queue.Queue

	mu    sync.Mutex
	reads int
	items int
}

func (c *countingReader) Read(ctx context.Context, max int) ([]queue.Item, error) {
	items, err := c.q.Read(ctx, max)
	c.mu.Lock()
	if len(items) > 0 {
		c.reads++
		c.items += len(items)
	}
	c.mu.Unlock()
	return items, err
}

func (c *countingReader) Commit(seq uint64) { c.q.Commit(seq) }
func (c *countingReader) Rewind()           { c.q.Rewind() }

// TestFileTargetCatchesUpInLargeReads: a file target that fell behind by
// 5,000 copies (some 900 KiB, about what 100 ms of the kernel's full rate
// brings) takes them in one or two reads of its queue, not one per 512
// copies: each read takes the queue's lock against the router, which
// pushes all the time. Every copy reaches the real file, in order.
func TestFileTargetCatchesUpInLargeReads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	opt := deliver.FileOptions(hostlog.Options{Flush: hostlog.FlushIncrementalAsync, Freq: 50}, path, dir, hclog.NewNullLogger())
	f, err := deliver.OpenFile(opt)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.OpenDir(nil, queue.Limits{Memory: 16 << 20}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	const n = 5000
	var want bytes.Buffer
	for i := range n {
		line := fmt.Appendf(nil, "type=SYSCALL msg=audit(1700000000.%03d:%d): arch=c000003e syscall=63 success=yes exit=0 a0=7ffd a1=0 a2=0 a3=0 items=0 ppid=1 pid=%d auid=0 uid=0 gid=0 comm=\"loadgen\" key=\"bench\"", i%1000, i+1, 1000+i)
		q.Push(line)
		want.Write(line)
		want.WriteByte('\n')
	}
	r := &countingReader{q: q}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, r)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().Committed < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if c := q.Stats().Committed; c != n {
		t.Fatalf("%d of %d copies committed", c, n)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("the file holds %d bytes, want the %d bytes of the %d copies in order", len(got), want.Len(), n)
	}
	if r.items != n || r.reads > 2 {
		t.Errorf("the target took %d copies in %d reads of its queue, want them in at most 2", r.items, r.reads)
	}
	t.Logf("%d copies (%d KiB) in %d reads", r.items, want.Len()>>10, r.reads)
}
