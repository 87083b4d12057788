package router

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// The assembler, fed random interleavings of events (some without their
// EOE, some records arriving after a long pause), must emit every record
// exactly once, each event's records together and in arrival order, mark
// as partial exactly the syscall events that closed without EOE, release
// every record's buffer once, and be left with no open event.
func TestAssemblerInterleavings(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		type ev struct {
			serial uint64
			recs   []string // texts, in arrival order
			eoe    bool
		}
		var got [][]string
		partial := map[uint64]bool{}
		released := 0
		release := func([]byte) { released++ }
		a := NewAssembler(time.Second, time.Duration(rng.IntN(2))*50*time.Millisecond,
			func(ev *record.Event, _ int64) {
				var texts []string
				for _, r := range ev.Records {
					texts = append(texts, string(r.Data))
				}
				got = append(got, texts)
				if ev.Partial {
					partial[ev.Records[0].Serial] = true
				}
			})
		if seed%3 == 0 {
			a.early = func(*record.Event, int64) bool { return rng.IntN(2) == 0 }
		}
		now := time.Unix(1700000000, 0)
		var evs []*ev
		var open []*ev // events that may get more records: none after a timeout
		next := uint64(1)
		added := 0
		for step := 0; step < 300; step++ {
			now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
			if rng.IntN(40) == 0 {
				now = now.Add(2 * time.Second) // long enough to time out what is open
				a.Expire(now, release)
				open = open[:0]
			}
			if len(open) == 0 || (len(open) < 4 && rng.IntN(3) == 0) {
				e := &ev{serial: next}
				next++
				evs = append(evs, e)
				open = append(open, e)
			}
			k := rng.IntN(len(open))
			e := open[k]
			typ := uint16(record.TypeSyscall)
			if len(e.recs) > 0 {
				typ = 1302 // PATH
			}
			if len(e.recs) > 0 && rng.IntN(4) == 0 {
				typ = record.TypeEOE
			}
			text := fmt.Sprintf("audit(1700000000.000:%d): n=%d", e.serial, len(e.recs))
			var r record.Record
			if err := record.Parse(&r, typ, []byte(text)); err != nil {
				t.Fatal(err)
			}
			a.Add(&r, []byte(text), now, release)
			added++
			e.recs = append(e.recs, text)
			if typ == record.TypeEOE {
				e.eoe = true
				open = slices.Delete(open, k, k+1)
			}
		}
		now = now.Add(2 * time.Second)
		a.Expire(now, release)
		a.Flush(release)
		want := map[uint64][]string{}
		for _, e := range evs {
			if len(e.recs) > 0 {
				want[e.serial] = e.recs
			}
		}
		n := 0
		for _, g := range got {
			var r record.Record
			record.Parse(&r, 0, []byte(g[0]))
			n += len(g)
			if w, ok := want[r.Serial]; !ok || !slices.Equal(w, g) {
				t.Fatalf("seed %d: event %d emitted as %q, want %q (once)", seed, r.Serial, g, w)
			}
			delete(want, r.Serial)
		}
		if n != added || released != added {
			t.Fatalf("seed %d: %d records added, %d emitted, %d buffers released", seed, added, n, released)
		}
		for _, e := range evs {
			if len(e.recs) > 0 && e.eoe == partial[e.serial] {
				t.Errorf("seed %d: event %d: EOE %v, marked partial %v", seed, e.serial, e.eoe, partial[e.serial])
			}
		}
		if len(a.open) != 0 || len(a.fifo) != 0 || len(a.ready) != 0 {
			t.Fatalf("seed %d: left %d open, %d in the fifo, %d ready", seed, len(a.open), len(a.fifo), len(a.ready))
		}
	}
}

// An event that early lets through is emitted as it closes while no other
// event waits for the delay; one that waits holds back every event closed
// after it, so that events are emitted in the order they closed.
func TestAssemblerEarly(t *testing.T) {
	var got []uint64
	a := NewAssembler(time.Second, time.Hour, func(ev *record.Event, _ int64) { got = append(got, ev.Records[0].Serial) })
	a.early = func(_ *record.Event, pid int64) bool { return pid == 7 }
	now := time.Unix(1700000000, 0)
	released := 0
	release := func([]byte) { released++ }
	add := func(serial uint64, pid int) {
		for _, typ := range []uint16{record.TypeSyscall, record.TypeEOE} {
			text := fmt.Sprintf("audit(1700000000.000:%d): arch=c000003e syscall=63 ppid=1 pid=%d", serial, pid)
			var r record.Record
			if err := record.Parse(&r, typ, []byte(text)); err != nil {
				t.Fatal(err)
			}
			a.Add(&r, []byte(text), now, release)
		}
	}
	check := func(when string, want ...uint64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: emitted %v, want %v", when, got, want)
		}
	}
	add(1, 7)
	check("pid 7, nothing waiting", 1)
	add(2, 9)
	now = now.Add(30 * time.Minute)
	add(3, 7)
	check("pid 9, then pid 7 behind it", 1)
	a.Expire(now, release)
	check("before the delay", 1)
	// Event 2's delay has passed, event 3's has not: 3 waited only for 2.
	now = now.Add(31 * time.Minute)
	a.Expire(now, release)
	check("after event 2's delay", 1, 2, 3)
	add(4, 7)
	check("pid 7 again, nothing waiting", 1, 2, 3, 4)
	if released != 8 || len(a.ready) != 0 || len(a.fifo) != 0 {
		t.Errorf("%d buffers released (want 8), %d ready, %d in the fifo", released, len(a.ready), len(a.fifo))
	}
}

// An event that never sees an EOE (a user message) stays open for the
// timeout. The events that close meanwhile, one after another or
// interleaved, must be recycled all the same: the assembler allocates
// nothing per event once warm, and events that arrive one after another
// never wait in the fifo.
func TestAssemblerRecyclesBehindOpenEvent(t *testing.T) {
	emitted := 0
	a := NewAssembler(time.Hour, 0, func(*record.Event, int64) { emitted++ })
	now := time.Unix(1700000000, 0)
	release := func([]byte) {}
	const n = 1 << 15
	var recs []record.Record
	var bufs [][]byte
	prepare := func(typ uint16, serial int, text string) {
		buf := fmt.Appendf(nil, "audit(1700000000.000:%d): %s", serial, text)
		var r record.Record
		if err := record.Parse(&r, typ, buf); err != nil {
			t.Fatal(err)
		}
		recs, bufs = append(recs, r), append(bufs, buf)
	}
	prepare(1107, 1, "pid=5 uid=0 msg='no EOE follows'") // USER
	for s := 2; s < n; s += 2 {
		// Two events interleaved, as from two CPUs.
		prepare(record.TypeSyscall, s, "arch=c000003e syscall=63 ppid=1 pid=7")
		prepare(record.TypeSyscall, s+1, "arch=c000003e syscall=63 ppid=1 pid=8")
		prepare(record.TypeEOE, s, "")
		prepare(record.TypeEOE, s+1, "")
	}
	for s := n; s < 2*n; s++ {
		prepare(record.TypeSyscall, s, "arch=c000003e syscall=63 ppid=1 pid=7")
		prepare(record.TypeEOE, s, "")
	}
	next := 0
	feed := func(k int) {
		for range k {
			a.Add(&recs[next], bufs[next], now, release)
			next++
			if next%256 == 0 {
				a.Expire(now, release) // the user message is not yet due
			}
		}
	}
	feed(1 + 4*1024) // warm up
	if allocs := testing.AllocsPerRun(100, func() { feed(4 * 64) }); allocs != 0 {
		t.Errorf("interleaved events behind an open one: %v allocations per 64 pairs, want 0", allocs)
	}
	for next < 2*(n-2)+1 {
		feed(1)
	}
	if allocs := testing.AllocsPerRun(100, func() { feed(2 * 64) }); allocs != 0 {
		t.Errorf("events one after another behind an open one: %v allocations per 64 events, want 0", allocs)
	}
	if len(a.fifo) > 1 {
		t.Errorf("%d events in the fifo after events that came one after another, want only the open one", len(a.fifo))
	}
	want := (next - 1) / 2
	if emitted != want {
		t.Errorf("emitted %d events, want %d", emitted, want)
	}
	a.Flush(release)
	if emitted != want+1 || len(a.open) != 0 || len(a.fifo) != 0 {
		t.Errorf("after Flush: emitted %d (want %d), %d open, %d in the fifo", emitted, want+1, len(a.open), len(a.fifo))
	}
}
