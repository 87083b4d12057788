package queue_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

func spoolLimits() queue.Limits {
	return queue.Limits{Memory: 10 * int64(len(rec(1))), Spool: 1 << 20}
}

func TestRestartResumes(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, spoolLimits())
	pushN(q, 1, 100) // 90 spooled, 10 in memory
	readAvailable(t, q, 10)
	q.Commit(10)
	closeQueue(t, q)

	q = open(t, dir, spoolLimits())
	if st := q.Stats(); st.SpoolItems != 90 || st.MemoryItems != 0 || st.Dropped.Total() != 0 {
		t.Errorf("after reopening: Stats = %+v, want 90 spooled, nothing dropped", st)
	}
	pushN(q, 101, 105)
	if diff := cmp.Diff(wantRange(11, 105, 0), readAvailable(t, q, 30)); diff != "" {
		t.Errorf("read after reopening (-want +got):\n%s", diff)
	}
	q.Commit(50)
	closeQueue(t, q)

	q = open(t, dir, spoolLimits())
	defer closeQueue(t, q)
	if diff := cmp.Diff(wantRange(51, 105, 0), readAvailable(t, q, 30)); diff != "" {
		t.Errorf("read after reopening again (-want +got):\n%s", diff)
	}
}

func TestRestartKeepsLost(t *testing.T) {
	dir := t.TempDir()
	lim := queue.Limits{Memory: 10 * int64(len(rec(1))), Spool: queue.MinSpool}
	q := open(t, dir, lim)
	pushN(q, 1, 2000)
	dropped := q.Stats().Dropped.Full
	closeQueue(t, q)
	q = open(t, dir, lim)
	defer closeQueue(t, q)
	items := readAvailable(t, q, 100)
	checkAccounting(t, items, 2000)
	if items[0].Lost != dropped {
		t.Errorf("first item after reopening carries Lost %d, want %d", items[0].Lost, dropped)
	}
}

const (
	crashEnv    = "QUEUE_TEST_CRASH_DIR"
	crashPushed = 5000
	crashCommit = 20
)

// crashHelper runs in a child process: it fills a queue and is killed.
func crashHelper(dir string) {
	q, err := queue.Open(dir, spoolLimits(), nil)
	if err != nil {
		os.Exit(3)
	}
	pushN(q, 1, crashPushed)
	q.Commit(crashCommit)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

// crash runs crashHelper in a child process.
func crash(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("crash helper: %v, want killed", err)
	}
	return dir
}

func TestKilledCountsMemoryLoss(t *testing.T) {
	dir := crash(t)
	q := open(t, dir, spoolLimits())
	defer closeQueue(t, q)
	st := q.Stats()
	spooled := uint64(st.SpoolItems)
	// The spool holds what was written out; everything after it is lost.
	lost := crashPushed - crashCommit - spooled
	if st.Dropped.Crash != lost || lost < 10 {
		t.Errorf("after a kill: Dropped.Crash = %d with %d spooled, want %d (at least the 10 in memory)", st.Dropped.Crash, spooled, lost)
	}
	pushN(q, crashPushed+1, crashPushed+1)
	want := append(wantRange(crashCommit+1, crashCommit+int(spooled), 0), got{crashPushed + 1, string(rec(crashPushed + 1)), lost})
	if diff := cmp.Diff(want, readAvailable(t, q, 64)); diff != "" {
		t.Errorf("read after a kill (-want +got):\n%s", diff)
	}
}

// lastSegment returns the path of the newest spool segment in dir.
func lastSegment(t *testing.T, dir string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no spool segment")
	}
	slices.Sort(segs)
	return segs[len(segs)-1]
}

func TestTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, path string)
	}{
		{"cut in a frame", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()-5); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbage after", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("\x10\x00\x00\x00garbage that is no frame"))
			f.Close()
		}},
		{"zeros after", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write(make([]byte, 4096))
			f.Close()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := crash(t)
			// What the spool holds before the damage.
			q := open(t, dir, spoolLimits())
			before := readAvailable(t, q, 1000)
			closeQueue(t, q)
			// Crash again, then tear the newest segment.
			os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
			dir2 := crash(t)
			path := lastSegment(t, dir2)
			tc.tear(t, path)
			q = open(t, dir2, spoolLimits())
			defer closeQueue(t, q)
			after := readAvailable(t, q, 1000)
			st := q.Stats()
			if len(after) == 0 || len(after) > len(before) {
				t.Fatalf("read %d items after the tear, %d before", len(after), len(before))
			}
			if diff := cmp.Diff(before[:len(after)], after); diff != "" {
				t.Errorf("read after the tear (-want +got):\n%s", diff)
			}
			// Everything after the last good frame is counted as lost.
			if want := crashPushed - crashCommit - uint64(len(after)); st.Dropped.Crash != want {
				t.Errorf("Dropped.Crash = %d, want %d", st.Dropped.Crash, want)
			}
			checkCut(t, tc.name, len(before), len(after))
		})
	}
}

// checkCut checks that a cut loses at most the frame it cuts.
func checkCut(t *testing.T, name string, before, after int) {
	t.Helper()
	want := before
	if name == "cut in a frame" {
		want--
	}
	if after != want {
		t.Errorf("%d items survive, want %d", after, want)
	}
}

func TestMemoryOnlyStartsOver(t *testing.T) {
	q := open(t, "", memOnly)
	pushN(q, 1, 3)
	closeQueue(t, q)
	if got := q.Stats().Dropped.Closed; got != 3 {
		t.Errorf("Dropped.Closed = %d, want 3", got)
	}
	q = open(t, "", memOnly)
	defer closeQueue(t, q)
	pushN(q, 1, 1)
	if diff := cmp.Diff(wantRange(1, 1, 0), readAvailable(t, q, 10)); diff != "" {
		t.Errorf("read (-want +got):\n%s", diff)
	}
}

var _ = strconv.Itoa

// TestSpoolErrorCounted removes the spool directory under a queue: starting
// the next segment fails, and the items that could not be spooled are
// counted and reported, without stopping the queue.
func TestSpoolErrorCounted(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, queue.Limits{Memory: 10 * int64(len(rec(1))), Spool: queue.MinSpool})
	pushN(q, 1, 100)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	pushN(q, 101, 1000)
	st := q.Stats()
	if st.Dropped.SpoolError == 0 {
		t.Fatalf("Stats = %+v, want spool errors", st)
	}
	items := readAvailable(t, q, 100)
	checkAccounting(t, items, 1000)
	var lost uint64
	for _, it := range items {
		lost += it.Lost
	}
	if st = q.Stats(); lost != st.Dropped.Total() {
		t.Errorf("told %d lost, Stats = %+v", lost, st)
	}
	if err := q.Close(); err == nil {
		t.Error("Close without a spool directory succeeded")
	}
}

// TestCorruptSegment damages a frame in the middle of a sealed segment: the
// rest of that segment is counted corrupt and reported on the next item,
// and the following segments are read as before.
func TestCorruptSegment(t *testing.T) {
	dir := t.TempDir()
	lim := queue.Limits{Memory: 10 * int64(len(rec(1))), Spool: 512 << 10}
	q := open(t, dir, lim)
	pushN(q, 1, 3000)
	closeQueue(t, q)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	slices.Sort(segs)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	q = open(t, dir, lim)
	defer closeQueue(t, q)
	items := readAvailable(t, q, 100)
	checkAccounting(t, items, 3000)
	var lost uint64
	for _, it := range items {
		lost += it.Lost
	}
	st := q.Stats()
	if lost == 0 || st.Dropped.Corrupt != lost || uint64(len(items))+lost != 3000 {
		t.Errorf("read %d, told %d lost; Stats = %+v", len(items), lost, st)
	}
}
