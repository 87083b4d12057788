package router

import (
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

type countPusher struct{ lines int }

func (p *countPusher) PushAll(items [][]byte) { p.lines += len(items) }

// TestTickFetchesFirst: the tick that finds an event idle for the timeout
// first takes the records waiting to be fetched: the event's EOE, submitted
// before the timeout ran out and not yet fetched (Run fetches every 10 ms),
// closes it whole, not partial.
func TestTickFetchesFirst(t *testing.T) {
	c, err := registry.Parse([]byte("name: a\nid: 1\ndeliver: {file: /x/a}\n"), "a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{EventTimeout: 40 * time.Millisecond})
	p := &countPusher{}
	r.Set(tree, map[string]*Container{"a": NewContainer(c, p)})
	r.Submit(record.TypeSyscall, []byte(`audit(1700000000.123:7): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 comm="true"`))
	r.Submit(record.TypeContainerID, []byte(`audit(1700000000.123:7): record=1300 contid=1`))
	var rec record.Record
	t0 := time.Now()
	r.addFetched(&rec, t0) // Run's fetch tick: the event is open
	r.Submit(record.TypeEOE, []byte(`audit(1700000000.123:7): `))
	r.tick(&rec, t0.Add(50*time.Millisecond)) // the EOE waits to be fetched
	r.addFetched(&rec, t0.Add(55*time.Millisecond))
	r.tick(&rec, t0.Add(time.Second))
	if st := r.Stats(); st.Events != 1 || st.Partial != 0 || p.lines != 3 {
		t.Errorf("stats %+v, %d lines copied: want 1 event, none partial, 3 lines", st, p.lines)
	}
}
