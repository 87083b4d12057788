package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

var memOnly = queue.Limits{Memory: 1 << 20}

func TestOrder(t *testing.T) {
	q := open(t, "", memOnly)
	defer closeQueue(t, q)
	pushN(q, 1, 100)
	if diff := cmp.Diff(wantRange(1, 100, 0), readAvailable(t, q, 7)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

func TestPushCopiesData(t *testing.T) {
	q := open(t, "", memOnly)
	defer closeQueue(t, q)
	buf := []byte("first")
	q.Push(buf)
	copy(buf, "XXXXX")
	if diff := cmp.Diff([]got{{1, "first", 0}}, readAvailable(t, q, 10)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

func TestReadWaitsForPush(t *testing.T) {
	q := open(t, "", memOnly)
	defer closeQueue(t, q)
	done := make(chan []queue.Item)
	go func() {
		items, _ := q.Read(context.Background(), 10)
		done <- items
	}()
	select {
	case <-done:
		t.Fatal("Read returned on an empty queue")
	case <-time.After(20 * time.Millisecond):
	}
	q.Push(rec(1))
	select {
	case items := <-done:
		if len(items) != 1 || items[0].Seq != 1 {
			t.Fatalf("Read = %v, want item 1", items)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not wake up after Push")
	}
}

func TestReadContextAndClose(t *testing.T) {
	q := open(t, "", memOnly)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := q.Read(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read after deadline: err = %v, want DeadlineExceeded", err)
	}
	errc := make(chan error)
	go func() {
		_, err := q.Read(context.Background(), 1)
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond)
	closeQueue(t, q)
	if err := <-errc; !errors.Is(err, queue.ErrClosed) {
		t.Errorf("Read across Close: err = %v, want ErrClosed", err)
	}
	q.Push(rec(1))
	if got := q.Stats().Dropped.Closed; got != 1 {
		t.Errorf("Dropped.Closed after a push to a closed queue = %d, want 1", got)
	}
}

func TestOpenRejectsBadLimits(t *testing.T) {
	for _, lim := range []queue.Limits{{}, {Memory: -1}, {Memory: 1 << 20, Spool: 100}} {
		if q, err := queue.Open(t.TempDir(), lim, nil); err == nil {
			q.Close()
			t.Errorf("Open with %+v succeeded", lim)
		}
	}
	if q, err := queue.Open("", queue.Limits{Memory: 1 << 20, Spool: 1 << 20}, nil); err == nil {
		q.Close()
		t.Error("Open with a spool and no directory succeeded")
	}
}

func TestMemoryLimitDropsOldest(t *testing.T) {
	size := int64(len(rec(1)))
	q := open(t, "", queue.Limits{Memory: 10 * size})
	defer closeQueue(t, q)
	pushN(q, 1, 25)
	st := q.Stats()
	if st.MemoryItems != 10 || st.MemoryBytes != 10*size || st.Dropped.Full != 15 || st.Pushed != 25 {
		t.Errorf("Stats = %+v, want 10 items of %d bytes, 15 dropped full, 25 pushed", st, 10*size)
	}
	if diff := cmp.Diff(wantRange(16, 25, 15), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

func TestLostIsToldUntilCommitted(t *testing.T) {
	size := int64(len(rec(1)))
	q := open(t, "", queue.Limits{Memory: 4 * size})
	defer closeQueue(t, q)
	pushN(q, 1, 6) // 1 and 2 dropped
	first := readAvailable(t, q, 1)
	q.Rewind()
	again := readAvailable(t, q, 100)
	if diff := cmp.Diff(wantRange(3, 6, 2), again); diff != "" {
		t.Errorf("read after Rewind (-want +got):\n%s", diff)
	}
	if first[0] != again[0] {
		t.Errorf("first read %v, after Rewind %v", first[0], again[0])
	}
	q.Commit(3)
	q.Rewind()
	if diff := cmp.Diff(wantRange(4, 6, 0), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after Commit and Rewind (-want +got):\n%s", diff)
	}
	// Drops after a partial read: the next item reports the unread ones
	// dropped, 7 and 8; the read ones, 4 to 6, count only after a Rewind.
	pushN(q, 7, 12) // 4..8 dropped: memory holds 9..12
	if diff := cmp.Diff(wantRange(9, 12, 2), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after more drops (-want +got):\n%s", diff)
	}
	if got := q.Stats().Dropped.Full; got != 4 {
		t.Errorf("Dropped.Full = %d, want 4 (1, 2, 7, 8)", got)
	}
	q.Rewind()
	if diff := cmp.Diff(wantRange(9, 12, 5), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after more drops and Rewind (-want +got):\n%s", diff)
	}
	if got := q.Stats().Dropped.Full; got != 7 {
		t.Errorf("Dropped.Full after Rewind = %d, want 7", got)
	}
}

func TestTooLarge(t *testing.T) {
	q := open(t, "", queue.Limits{Memory: 100})
	defer closeQueue(t, q)
	q.Push(make([]byte, 101))
	q.Push([]byte("fits"))
	if diff := cmp.Diff([]got{{1, "fits", 1}}, readAvailable(t, q, 10)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	if got := q.Stats().Dropped; got != (queue.Drops{TooLarge: 1}) {
		t.Errorf("Dropped = %+v, want one too large", got)
	}
}

func TestEmptyItems(t *testing.T) {
	q := open(t, "", queue.Limits{Memory: 10})
	defer closeQueue(t, q)
	for range 3 {
		q.Push(nil)
	}
	if diff := cmp.Diff([]got{{1, "", 0}, {2, "", 0}, {3, "", 0}}, readAvailable(t, q, 10)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

func TestCommitRewind(t *testing.T) {
	q := open(t, "", memOnly)
	defer closeQueue(t, q)
	pushN(q, 1, 10)
	ctx := context.Background()
	items, err := q.Read(ctx, 5)
	if err != nil || len(items) != 5 {
		t.Fatalf("Read = %d items, %v; want 5", len(items), err)
	}
	q.Commit(3)
	if st := q.Stats(); st.MemoryItems != 7 || st.Committed != 3 {
		t.Errorf("after Commit(3): Stats = %+v, want 7 in memory, 3 committed", st)
	}
	// Unread items come next, not the read ones.
	if diff := cmp.Diff(wantRange(6, 10, 0), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after Commit (-want +got):\n%s", diff)
	}
	q.Rewind()
	if diff := cmp.Diff(wantRange(4, 10, 0), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after Rewind (-want +got):\n%s", diff)
	}
	q.Commit(100) // beyond the last: commits everything
	q.Rewind()
	if got := readAvailable(t, q, 100); len(got) != 0 {
		t.Errorf("read after committing all: %v", got)
	}
	pushN(q, 11, 11)
	if diff := cmp.Diff(wantRange(11, 11, 0), readAvailable(t, q, 100)); diff != "" {
		t.Errorf("read after a new push (-want +got):\n%s", diff)
	}
}

func TestSpoolOverflow(t *testing.T) {
	size := int64(len(rec(1)))
	q := open(t, t.TempDir(), queue.Limits{Memory: 10 * size, Spool: 1 << 20})
	defer closeQueue(t, q)
	pushN(q, 1, 1000)
	st := q.Stats()
	if st.MemoryItems != 10 || st.SpoolItems != 990 || st.Dropped.Total() != 0 {
		t.Errorf("Stats = %+v, want 10 in memory, 990 spooled, nothing dropped", st)
	}
	if diff := cmp.Diff(wantRange(1, 1000, 0), readAvailable(t, q, 64)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
	q.Rewind()
	if diff := cmp.Diff(wantRange(1, 1000, 0), readAvailable(t, q, 1000)); diff != "" {
		t.Errorf("read after Rewind (-want +got):\n%s", diff)
	}
	q.Commit(1000)
	if st := q.Stats(); st.MemoryItems != 0 || st.SpoolItems != 0 || st.SpoolBytes > 1<<20/8+64 || st.Committed != 1000 {
		t.Errorf("after committing all: Stats = %+v, want empty and at most one segment on disk", st)
	}
}

func TestSpoolFullDropsOldest(t *testing.T) {
	const spool = queue.MinSpool
	size := int64(len(rec(1)))
	q := open(t, t.TempDir(), queue.Limits{Memory: 10 * size, Spool: spool})
	defer closeQueue(t, q)
	const n = 5000
	pushN(q, 1, n)
	st := q.Stats()
	if st.SpoolBytes > spool || st.Dropped.Full == 0 {
		t.Errorf("Stats = %+v, want spool within %d bytes and drops", st, spool)
	}
	items := readAvailable(t, q, 100)
	checkAccounting(t, items, n)
	if lost := items[0].Lost; lost != st.Dropped.Full || uint64(len(items))+lost != n {
		t.Errorf("read %d items, first Lost %d, Dropped.Full %d; want them to add up to %d", len(items), lost, st.Dropped.Full, n)
	}
	if uint64(st.SpoolItems+st.MemoryItems) != uint64(len(items)) {
		t.Errorf("Stats said %d+%d queued, read %d", st.SpoolItems, st.MemoryItems, len(items))
	}
}

func TestLargeItemGoesToSpool(t *testing.T) {
	q := open(t, t.TempDir(), queue.Limits{Memory: 100, Spool: 1 << 20})
	defer closeQueue(t, q)
	big := string(make([]byte, 500))
	q.Push([]byte("a"))
	q.Push([]byte(big))
	q.Push([]byte("b"))
	want := []got{{1, "a", 0}, {2, big, 0}, {3, "b", 0}}
	if diff := cmp.Diff(want, readAvailable(t, q, 10)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

func TestOpenTwiceRefused(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, queue.Limits{Memory: 1 << 10, Spool: 1 << 20})
	defer closeQueue(t, q)
	q2, err := queue.Open(dir, queue.Limits{Memory: 1 << 10, Spool: 1 << 20}, nil)
	if err == nil {
		q2.Close()
		t.Fatal("a second Open on the same directory succeeded")
	}
	var qe *queue.Error
	if !errors.Is(err, queue.ErrSpoolInUse) || !errors.As(err, &qe) || qe.Op != "opening" || qe.Dir != dir {
		t.Errorf("second Open: err = %v, want a *queue.Error opening %s matching ErrSpoolInUse", err, dir)
	}
}

// TestRewindDeepInSegment commits far into a spool segment and rewinds, so
// that reading skips many frames (over several turns of the lock), and does
// the same across a restart.
func TestRewindDeepInSegment(t *testing.T) {
	dir := t.TempDir()
	lim := queue.Limits{Memory: 1 << 10, Spool: 64 << 20}
	q := open(t, dir, lim)
	pushN(q, 1, 50000)
	if got := len(readAvailable(t, q, 1000)); got != 50000 {
		t.Fatalf("read %d items, want 50000", got)
	}
	q.Commit(40000)
	q.Rewind()
	if diff := cmp.Diff(wantRange(40001, 50000, 0), readAvailable(t, q, 1000)); diff != "" {
		t.Errorf("read after Rewind (-want +got):\n%s", diff)
	}
	q.Commit(45000)
	closeQueue(t, q)
	q = open(t, dir, lim)
	defer closeQueue(t, q)
	if diff := cmp.Diff(wantRange(45001, 50000, 0), readAvailable(t, q, 1000)); diff != "" {
		t.Errorf("read after reopening (-want +got):\n%s", diff)
	}
}

// PeakMemoryBytes keeps the largest burst the reader fell behind by, after
// the queue was emptied and its buffer given back.
func TestPeakMemoryBytes(t *testing.T) {
	q, err := queue.Open("", queue.Limits{Memory: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	line := make([]byte, 100)
	for range 50 {
		q.Push(line)
	}
	q.PushAll([][]byte{line, line})
	items, err := q.Read(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	q.Commit(items[len(items)-1].Seq)
	q.Push(line)
	st := q.Stats()
	if st.PeakMemoryBytes != 5200 || st.MemoryBytes != 100 {
		t.Errorf("PeakMemoryBytes %d, MemoryBytes %d; want 5200 and 100", st.PeakMemoryBytes, st.MemoryBytes)
	}
}

// TestReadTakesAMiBFromMemory: a reader that fell behind takes up to 1 MiB
// of copies from memory in one Read (one hold of the lock the pushes
// need), and a spooled backlog at most 256 KiB at a time, since that may
// read the disk under the lock.
func TestReadTakesAMiBFromMemory(t *testing.T) {
	item := make([]byte, 200)
	for _, tc := range []struct {
		name     string
		lim      queue.Limits
		dir      bool
		min, max int // bytes one Read must and may return
	}{
		{name: "memory", lim: queue.Limits{Memory: 8 << 20}, min: 900 << 10, max: 1<<20 + 200},
		{name: "spool", lim: queue.Limits{Memory: 64 << 10, Spool: 16 << 20}, dir: true, min: 200 << 10, max: 256<<10 + 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := ""
			if tc.dir {
				dir = t.TempDir()
			}
			q := open(t, dir, tc.lim)
			defer closeQueue(t, q)
			for range 8000 { // 1.6 MB
				q.Push(item)
			}
			items, err := q.Read(context.Background(), 100000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, it := range items {
				n += len(it.Data)
			}
			if n < tc.min || n > tc.max {
				t.Errorf("one Read returned %d bytes (%d items), want %d to %d", n, len(items), tc.min, tc.max)
			}
		})
	}
}
