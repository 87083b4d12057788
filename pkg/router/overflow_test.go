package router_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// TestOverflowToldToEveryContainer: records left unrouted (the backlog
// overflowed while the router did not run) are told to the queue of every
// registered container, the one whose records they were and one that got
// none of them, with their count and the serials of the first and last,
// before the first copy routed after them.
func TestOverflowToldToEveryContainer(t *testing.T) {
	a := container(t, "name: a\nid: 1\ndeliver: {file: /x/a}\n")
	b := container(t, "name: b\nid: 2\ndeliver: {file: /x/b}\n")
	tree, err := registry.Build([]*registry.Container{a, b})
	if err != nil {
		t.Fatal(err)
	}
	qs := map[string]*queue.Queue{}
	for _, name := range []string{"a", "b"} {
		q, err := queue.Open("", queue.Limits{Memory: 16 << 20}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		qs[name] = q
	}
	r := router.New(router.Options{Backlog: 1024, EventTimeout: time.Hour})
	r.Set(tree, map[string]*router.Container{"a": router.NewContainer(a, qs["a"]), "b": router.NewContainer(b, qs["b"])})
	submit := func(evs ...[][2]string) {
		for _, rec := range flat(evs...) {
			typ, _ := record.TypeByName(rec[0])
			r.Submit(typ, []byte(rec[1]))
		}
	}
	// 1,400 events of a, 3 records each, with the router not running:
	// batches 1 and 2 (records 1..1024) wait, 3 to 8 (1025..4096)
	// overflow, 4097..4200 wait in the batch being filled.
	for i := range 1400 {
		submit(event(i+1, "1", "k"))
	}
	if got := r.Stats().Overflow; got != 3072 {
		t.Fatalf("Overflow = %d, want 3072", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Record 1025 is event 342's second, 4096 event 1366's first.
	want := queue.Unrouted{Records: 3072,
		First: queue.Stamp{Sec: 1700000000, Msec: 123, Serial: 342},
		Last:  queue.Stamp{Sec: 1700000000, Msec: 123, Serial: 1366}}
	submit(event(5000, "2", "k"), event(5001, "1", "k"))
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for name, q := range qs {
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		items, err := q.Read(rctx, 100000)
		rcancel()
		if err != nil {
			t.Fatalf("%s: Read: %v", name, err)
		}
		var told []int
		for i, it := range items {
			if it.Unrouted != nil {
				told = append(told, i)
				if *it.Unrouted != want {
					t.Errorf("%s: item %d says unrouted %+v, want %+v", name, i, *it.Unrouted, want)
				}
			}
		}
		if len(told) != 1 {
			t.Errorf("%s: %d items say records were unrouted, want 1", name, len(told))
			continue
		}
		// a: every copy of events 1 to 341 (3 lines each; 342's SYSCALL
		// is held open), then the gap, then what is left of event 1366;
		// b: its one event.
		at, wantAt, next := told[0], 0, ":5000)"
		if name == "a" {
			wantAt, next = 341*3, ":1366)"
		}
		if at != wantAt || !strings.Contains(string(items[at].Data), next) {
			t.Errorf("%s: the gap is before item %d (%s), want %d (event %s)", name, at, items[at].Data, wantAt, next)
		}
		if st := q.Stats(); st.Dropped.RouterOverflow != 3072 {
			t.Errorf("%s: Dropped.RouterOverflow = %d, want 3072", name, st.Dropped.RouterOverflow)
		}
	}
}

// TestOverflowToldWithoutLaterRecords: an overflow that no record follows
// still reaches the queues (an empty batch takes it to Run).
func TestOverflowToldWithoutLaterRecords(t *testing.T) {
	a := container(t, "name: a\nid: 1\ndeliver: {file: /x/a}\n")
	tree, err := registry.Build([]*registry.Container{a})
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open("", queue.Limits{Memory: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	r := router.New(router.Options{Backlog: 512, EventTimeout: time.Hour})
	r.Set(tree, map[string]*router.Container{"a": router.NewContainer(a, q)})
	for i := range 1024 { // batch 1 waits, batch 2 overflows, nothing after
		r.Submit(record.TypeSyscall, fmt.Appendf(nil, "audit(1700000000.123:%d): pid=1", i+1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := q.Stats().Dropped.RouterOverflow; got != 512 || r.Stats().Overflow != 512 {
		t.Errorf("the queue counts %d router-overflow drops, the router %d: want 512", got, r.Stats().Overflow)
	}
}
