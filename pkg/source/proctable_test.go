package source

import (
	"testing"
)

const (
	cgA = "0::/tenants/a\n8:pids:/tenants/a\n"
	cgB = "0::/tenants/b\n8:pids:/tenants/b\n"
)

func mustV2(t *testing.T, tb *pidTable, pid uint32, want string) {
	t.Helper()
	c, ok := tb.get(pid)
	switch {
	case want == "" && ok:
		t.Errorf("pid %d: got %q, want no entry", pid, c.V2)
	case want != "" && !ok:
		t.Errorf("pid %d: no entry, want %q", pid, want)
	case ok && c.V2 != want:
		t.Errorf("pid %d: got %q, want %q", pid, c.V2, want)
	}
}

func TestPidTableForkExecExit(t *testing.T) {
	tb := newPidTable(100, 30)
	if err := tb.set(1, []byte(cgA), false); err != nil {
		t.Fatal(err)
	}
	if !tb.inherit(2, 1) {
		t.Fatal("inherit from a known parent: false")
	}
	mustV2(t, tb, 2, "/tenants/a")
	if tb.inherit(4, 3) {
		t.Error("inherit from an unknown parent: true")
	}
	// The child moved itself, then exec: re-read.
	tb.set(2, []byte(cgB), false)
	mustV2(t, tb, 2, "/tenants/b")
	mustV2(t, tb, 1, "/tenants/a")
	tb.exit(2, 100)
	mustV2(t, tb, 2, "/tenants/b") // kept for retain
	tb.expire(129)
	mustV2(t, tb, 2, "/tenants/b")
	tb.expire(130)
	mustV2(t, tb, 2, "")
	if n, ex, sets, _, _ := tb.counts(); n != 1 || ex != 0 || sets != 1 {
		t.Errorf("counts: entries %d exited %d sets %d, want 1 0 1", n, ex, sets)
	}
}

func TestPidTableLateReadKeepsExit(t *testing.T) {
	tb := newPidTable(100, 30)
	tb.set(1, []byte(cgA), false)
	tb.exit(1, 10)
	tb.set(1, []byte(cgB), false) // a zombie read after the exit event
	mustV2(t, tb, 1, "/tenants/b")
	tb.expire(40)
	mustV2(t, tb, 1, "")
}

func TestPidTableSeedDoesNotOverwrite(t *testing.T) {
	tb := newPidTable(100, 30)
	tb.set(5, []byte(cgB), false)
	tb.set(5, []byte(cgA), true)
	mustV2(t, tb, 5, "/tenants/b")
	// A fork event processed after seeding leaves the seeded child alone.
	tb.set(6, []byte(cgA), false)
	tb.inherit(5, 6)
	mustV2(t, tb, 5, "/tenants/b")
}

func TestPidTableReuse(t *testing.T) {
	tb := newPidTable(100, 30)
	tb.set(1, []byte(cgA), false)
	tb.set(9, []byte(cgB), false)
	tb.exit(9, 10)
	tb.inherit(9, 1) // pid 9 reused by a child of 1
	mustV2(t, tb, 9, "/tenants/a")
	tb.expire(100) // the old exit must not remove the new process
	mustV2(t, tb, 9, "/tenants/a")
	tb.exit(9, 200)
	tb.expire(229)
	mustV2(t, tb, 9, "/tenants/a")
	tb.expire(230)
	mustV2(t, tb, 9, "")
}

func TestPidTableEviction(t *testing.T) {
	tb := newPidTable(3, 1000)
	tb.set(1, []byte(cgA), false)
	tb.set(2, []byte(cgA), false)
	tb.set(3, []byte(cgB), false)
	tb.exit(2, 10)
	tb.exit(3, 20)
	tb.set(4, []byte(cgA), false) // evicts 2, the oldest exit
	mustV2(t, tb, 2, "")
	mustV2(t, tb, 3, "/tenants/b")
	mustV2(t, tb, 4, "/tenants/a")
	tb.inherit(5, 1) // evicts 3
	mustV2(t, tb, 3, "")
	mustV2(t, tb, 5, "/tenants/a")
	tb.set(6, []byte(cgB), false) // full of live processes: not stored
	mustV2(t, tb, 6, "")
	n, ex, sets, evicted, dropped := tb.counts()
	if n != 3 || ex != 0 || sets != 1 || evicted != 2 || dropped != 1 {
		t.Errorf("counts: %d entries, %d exited, %d sets, %d evicted, %d dropped; want 3 0 1 2 1", n, ex, sets, evicted, dropped)
	}
}

func TestPidTableSweep(t *testing.T) {
	tb := newPidTable(10, 5)
	tb.set(1, []byte(cgA), false)
	tb.set(2, []byte(cgA), false)
	tb.sweep(map[uint32]struct{}{1: {}}, 10)
	if _, ex, _, _, _ := tb.counts(); ex != 1 {
		t.Errorf("exited after sweep: %d, want 1", ex)
	}
	tb.expire(15)
	mustV2(t, tb, 2, "")
	mustV2(t, tb, 1, "/tenants/a")
}

func TestPidTableBadContent(t *testing.T) {
	tb := newPidTable(10, 5)
	if err := tb.set(1, []byte("garbage\n"), false); err == nil {
		t.Error("garbage: no error")
	}
	mustV2(t, tb, 1, "")
	if _, _, sets, _, _ := tb.counts(); sets != 0 {
		t.Errorf("sets %d after an error, want 0", sets)
	}
}

func TestPidTableFIFOBounded(t *testing.T) {
	tb := newPidTable(16, 1<<40)
	for i := range uint32(100000) {
		pid := 1 + i%8
		tb.set(pid, []byte(cgA), false)
		tb.exit(pid, int64(i)+1)
	}
	if len(tb.exits)-tb.head > 32 || cap(tb.exits) > 4096 {
		t.Errorf("exit FIFO: %d live items, capacity %d", len(tb.exits)-tb.head, cap(tb.exits))
	}
}

func newBenchTracker(b *testing.B) *CgroupTracker {
	tr := &CgroupTracker{table: newPidTable(DefaultCgroupMaxEntries, int64(DefaultCgroupRetain))}
	for pid := uint32(1); pid <= 10000; pid++ {
		c := cgA
		if pid%2 == 0 {
			c = cgB
		}
		if err := tr.table.set(pid, []byte(c), false); err != nil {
			b.Fatal(err)
		}
	}
	return tr
}

func BenchmarkCgroupLookupHit(b *testing.B) {
	tr := newBenchTracker(b)
	d := CgroupDir{V2: true, Path: "/tenants/a"}
	b.ReportAllocs()
	n := 0
	for i := 0; b.Loop(); i++ {
		c, ok := tr.Lookup(uint32(1+i%10000), 1)
		if ok && c.Within(d) {
			n++
		}
	}
	if n == 0 {
		b.Fatal("no hit within /tenants/a")
	}
}

func BenchmarkCgroupLookupHitParallel(b *testing.B) {
	tr := newBenchTracker(b)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			tr.Lookup(uint32(1+i%10000), 1)
			i++
		}
	})
}

func BenchmarkWithinV1(b *testing.B) {
	c, _ := parseProcCgroup([]byte(hybridCgroup))
	d := CgroupDir{Hierarchy: 8, Path: "/tenants"}
	b.ReportAllocs()
	for b.Loop() {
		if !c.Within(d) {
			b.Fatal("not within")
		}
	}
}
