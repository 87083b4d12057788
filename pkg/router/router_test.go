package router_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// sink is a Pusher that keeps what it is given.
type sink struct {
	mu    sync.Mutex
	lines []string
}

func (s *sink) PushAll(items [][]byte) {
	s.mu.Lock()
	for _, b := range items {
		s.lines = append(s.lines, string(b))
	}
	s.mu.Unlock()
}

func container(t testing.TB, src string) *registry.Container {
	t.Helper()
	c, err := registry.Parse([]byte(src), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stops holds, by router, the function that stops the Run startRouter
// started.
var stops sync.Map

// startRouter registers containers (YAML sources) with a new router, runs
// it until the test ends (or flush), and returns it, its containers and
// their sinks by name. Events close on their EOE only: the event timeout
// is an hour, so that a submitter kept off the CPU between two records of
// an event, as on a loaded machine, never splits it. Events without an
// EOE are closed by flush.
func startRouter(t testing.TB, attr router.Attributor, srcs ...string) (*router.Router, map[string]*router.Container, map[string]*sink) {
	t.Helper()
	var cs []*registry.Container
	for _, s := range srcs {
		cs = append(cs, container(t, s))
	}
	tree, err := registry.Build(cs)
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.Options{EventTimeout: time.Hour, Attribute: attr})
	sinks := map[string]*sink{}
	containers := map[string]*router.Container{}
	for _, c := range cs {
		sinks[c.Name] = &sink{}
		containers[c.Name] = router.NewContainer(c, sinks[c.Name])
	}
	r.Set(tree, containers)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	stop := sync.OnceFunc(func() { cancel(); <-done })
	stops.Store(r, stop)
	t.Cleanup(stop)
	return r, containers, sinks
}

// flush stops the Run of a router from startRouter: it routes every record
// submitted, then closes the events still open (a syscall event without
// its EOE as partial) and routes them too.
func flush(r *router.Router) {
	f, _ := stops.Load(r)
	f.(func())()
}

// submitSync submits records to r and returns once they are routed and
// the events they closed are copied (Router.Sync: no deadline to miss).
func submitSync(t testing.TB, r *router.Router, recs ...[2]string) {
	t.Helper()
	for _, rec := range recs {
		typ, _ := record.TypeByName(rec[0])
		r.Submit(typ, []byte(rec[1]))
	}
	if err := r.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// setup is startRouter with a function that submits records and waits for
// them to be routed.
func setup(t testing.TB, attr router.Attributor, srcs ...string) (*router.Router, map[string]*sink, func(recs ...[2]string)) {
	t.Helper()
	r, _, sinks := startRouter(t, attr, srcs...)
	return r, sinks, func(recs ...[2]string) { submitSync(t, r, recs...) }
}

func event(serial int, contid string, key string) [][2]string {
	ts := fmt.Sprintf("audit(1700000000.123:%d): ", serial)
	ev := [][2]string{{"SYSCALL", ts + `arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 auid=1000 uid=0 comm="true" exe="/usr/bin/true" key="` + key + `"`}}
	if contid != "" {
		ev = append(ev, [2]string{"CONTAINER_ID", ts + "record=1300 contid=" + contid})
	}
	return append(ev, [2]string{"EOE", ts})
}

func flat(evs ...[][2]string) [][2]string {
	var out [][2]string
	for _, e := range evs {
		out = append(out, e...)
	}
	return out
}

// waitLines returns s's lines once it has n (at once after a Sync or a
// flush, which leave nothing on its way to s), or after a minute: the
// deadline only bounds how long a failing test takes.
func waitLines(t testing.TB, s *sink, n int) []string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		got := slices.Clone(s.lines)
		s.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestChainRoutingAndTrimming(t *testing.T) {
	_, sinks, submit := setup(t, nil,
		"name: outer\nid: 1\ndeliver: {file: /x/o}\n",
		"name: mid\nid: 7\nparent: outer\ndeliver: {file: /x/m}\n",
		"name: other\nid: 9\ndeliver: {file: /x/x}\n",
	)
	submit(flat(event(10, "42,^7,^1", "a"), event(11, "9", "b"), event(12, "-1", "c"))...)
	mid := waitLines(t, sinks["mid"], 3)
	outer := waitLines(t, sinks["outer"], 3)
	other := waitLines(t, sinks["other"], 3)
	if len(mid) != 3 || !strings.HasSuffix(mid[1], "record=1300 contid=42,^7") {
		t.Errorf("mid got %q; want the event with its chain trimmed to 42,^7", mid)
	}
	if len(outer) != 3 || !strings.HasSuffix(outer[1], "record=1300 contid=42,^7,^1") {
		t.Errorf("outer got %q; want the full chain", outer)
	}
	if len(other) != 3 || !strings.Contains(other[0], ":11): ") {
		t.Errorf("other got %q; want only serial 11", other)
	}
	for name, s := range sinks {
		for _, l := range s.lines {
			if strings.Contains(l, ":12): ") {
				t.Errorf("%s received the event of an unset chain: %q", name, l)
			}
		}
	}
}

func TestRulesAndStrip(t *testing.T) {
	_, sinks, submit := setup(t, nil,
		"name: a\nid: 5\ndeliver: {file: /x/a}\nrules:\n  - keep: {key: wanted}\n    strip: [CONTAINER_ID]\n  - default: drop\n")
	submit(flat(event(1, "5", "noise"), event(2, "5", "wanted"))...)
	got := waitLines(t, sinks["a"], 2)
	want := []string{
		`type=SYSCALL msg=audit(1700000000.123:2): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 auid=1000 uid=0 comm="true" exe="/usr/bin/true" key="wanted"`,
		`type=EOE msg=audit(1700000000.123:2): `,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestMalformedAndBadChainAreNotRouted(t *testing.T) {
	r, sinks, submit := setup(t, nil, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	submit([][2]string{{"SYSCALL", "garbage without a header"}}...)
	submit(flat(event(3, "5,^x", "k"))...)
	st := r.Stats()
	if st.Malformed != 1 || st.BadChain != 1 {
		t.Errorf("stats %+v: want 1 malformed, 1 bad chain", st)
	}
	if n := len(sinks["a"].lines); n != 0 {
		t.Errorf("a received %d lines from bad input", n)
	}
}

func TestPartialEvent(t *testing.T) {
	// Closed by the timeout: both records are submitted before Run
	// starts, so that it takes them in one batch, however late.
	c := container(t, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.Options{EventTimeout: 50 * time.Millisecond})
	s := &sink{}
	r.Set(tree, map[string]*router.Container{"a": router.NewContainer(c, s)})
	ev := event(4, "5", "k")
	for _, rec := range ev[:2] { // no EOE
		typ, _ := record.TypeByName(rec[0])
		r.Submit(typ, []byte(rec[1]))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	for r.Stats().Partial == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if st := r.Stats(); len(s.lines) != 2 || st.Partial != 1 || st.Events != 1 {
		t.Errorf("closed by timeout: %d lines, stats %+v; want 2 lines, one event, partial", len(s.lines), st)
	}
	// Closed as the router stops.
	r2, sinks, submit := setup(t, nil, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	submit(ev[:2]...)
	flush(r2)
	if st := r2.Stats(); len(sinks["a"].lines) != 2 || st.Partial != 1 || st.Events != 1 {
		t.Errorf("closed at the stop: %d lines, stats %+v; want 2 lines, one event, partial", len(sinks["a"].lines), st)
	}
}

func TestOutOfOrderSerials(t *testing.T) {
	_, sinks, submit := setup(t, nil, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
	a, b := event(20, "5", "a"), event(21, "5", "b")
	submit(a[0], b[0], b[1], a[1], b[2], a[2]) // interleaved, as from two CPUs
	got := waitLines(t, sinks["a"], 6)
	if len(got) != 6 || !strings.Contains(got[0], ":21): ") || !strings.Contains(got[3], ":20): ") {
		t.Errorf("interleaved events: got %q", got)
	}
}

// attrFunc is a router.Attributor for tests: always settled.
type attrFunc func(pid, ppid uint32, at int64, dirs []string) int

func (f attrFunc) Attribute(pid, ppid uint32, at int64, dirs []string) int {
	return f(pid, ppid, at, dirs)
}
func (f attrFunc) Settled(int64) bool { return true }

func TestCgroupAttribution(t *testing.T) {
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		for i, d := range dirs {
			if pid == 100 && strings.HasPrefix("/cg/a/b/x", d) {
				return i
			}
		}
		return -1
	})
	_, sinks, submit := setup(t, attr,
		"name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n",
		"name: b\nparent: a\ncgroup: /cg/a/b\ndeliver: {file: /x/b}\n",
		"name: z\ncgroup: /cg/z\ndeliver: {file: /x/z}\n")
	submit(flat(event(30, "", "k"))...)
	if got := waitLines(t, sinks["b"], 2); len(got) != 2 {
		t.Errorf("b (deepest) got %d lines", len(got))
	}
	if got := waitLines(t, sinks["a"], 2); len(got) != 2 {
		t.Errorf("a (enclosing b) got %d lines", len(got))
	}
	if n := len(sinks["z"].lines); n != 0 {
		t.Errorf("z got %d lines", n)
	}
}

// TestPropertyTrees routes random events through random container trees
// (depth up to 4, up to 200 containers): every container receives exactly the
// events of its subtree that its rules keep, with chains trimmed at itself.
func TestPropertyTrees(t *testing.T) {
	for seed := range 5 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		n := 1 + rng.IntN(200)
		type node struct {
			id     uint64
			parent int
			keep   string // the key its rules keep; "" keeps all
		}
		nodes := make([]node, n)
		var srcs []string
		depth := make([]int, n)
		for i := range nodes {
			nodes[i] = node{id: uint64(1000 + i), parent: -1}
			if i > 0 && rng.IntN(3) > 0 {
				if p := rng.IntN(i); depth[p] < 3 {
					nodes[i].parent, depth[i] = p, depth[p]+1
				}
			}
			src := fmt.Sprintf("name: c%d\nid: %d\ndeliver: {file: /x/%d}\n", i, nodes[i].id, i)
			if nodes[i].parent >= 0 {
				src += fmt.Sprintf("parent: c%d\n", nodes[i].parent)
			}
			if rng.IntN(2) == 0 {
				nodes[i].keep = fmt.Sprintf("k%d", rng.IntN(3))
				src += fmt.Sprintf("rules:\n  - keep: {key: %s}\n  - default: drop\n", nodes[i].keep)
			}
			srcs = append(srcs, src)
		}
		_, sinks, submit := setup(t, nil, srcs...)
		want := map[string][]string{}
		var recs [][2]string
		for e := range 300 {
			leaf := rng.IntN(n)
			var chain []uint64
			if rng.IntN(4) == 0 {
				chain = append(chain, 999999) // an unregistered innermost container
			}
			for i := leaf; i >= 0; i = nodes[i].parent {
				chain = append(chain, nodes[i].id)
			}
			key := fmt.Sprintf("k%d", rng.IntN(3))
			text := string(record.AppendChain(nil, chain))
			recs = append(recs, event(e+1, text, key)...)
			for pos, id := range chain {
				if id == 999999 {
					continue
				}
				i := int(id - 1000)
				if nodes[i].keep != "" && nodes[i].keep != key {
					continue
				}
				trimmed := string(record.AppendChain(nil, chain[:pos+1]))
				want[fmt.Sprintf("c%d", i)] = append(want[fmt.Sprintf("c%d", i)], fmt.Sprintf("%d %s", e+1, trimmed))
			}
		}
		submit(recs...)
		for name, s := range sinks {
			exp := want[name]
			lines := waitLines(t, s, 3*len(exp))
			var got []string
			for _, l := range lines {
				if strings.HasPrefix(l, "type=UNKNOWN[1340] ") {
					var serial int
					fmt.Sscanf(l[strings.Index(l, ":1")+1:], "%d", &serial)
					serial = serialOf(l)
					got = append(got, fmt.Sprintf("%d %s", serial, l[strings.Index(l, "contid=")+7:]))
				}
			}
			if !slices.Equal(got, exp) {
				t.Fatalf("seed %d, %s: got %d events %v\nwant %d events %v", seed, name, len(got), got, len(exp), exp)
			}
			if len(lines) != 3*len(exp) {
				t.Fatalf("seed %d, %s: %d lines for %d events", seed, name, len(lines), len(exp))
			}
		}
	}
}

func serialOf(line string) int {
	i := strings.Index(line, "):")
	j := strings.LastIndex(line[:i], ":")
	var n int
	fmt.Sscanf(line[j+1:i], "%d", &n)
	return n
}

// TestNetfilterChains: a netfilter record's CONTAINER_ID lists every chain
// using the network namespace; each registered container on any of them
// gets one copy, showing only its own chains, cut at itself.
func TestNetfilterChains(t *testing.T) {
	r, sinks, submit := setup(t, nil,
		"name: host\nid: 1\ndeliver: {file: /x/h}\n",
		"name: a\nid: 600\nparent: host\ndeliver: {file: /x/a}\n",
		"name: b\nid: 601\nparent: host\ndeliver: {file: /x/b}\n")
	ts := "audit(1700000000.123:50): "
	submit([][2]string{
		{"NETFILTER_PKT", ts + "mark=0x0 saddr=10.0.0.1 daddr=10.0.0.2 proto=6"},
		{"CONTAINER_ID", ts + "record=1324 contid=600,^1,601,^1"},
	}...)
	flush(r) // a netfilter event has no EOE
	for name, want := range map[string]string{"a": "contid=600", "b": "contid=601", "host": "contid=600,^1,601,^1"} {
		got := waitLines(t, sinks[name], 2)
		if len(got) != 2 || !strings.HasSuffix(got[1], "record=1324 "+want) {
			t.Errorf("%s got %q, want its CONTAINER_ID to read %s", name, got, want)
		}
	}
}

// TestOverflow: when more than Backlog records wait for the router, Submit
// counts them as overflow instead of queueing them, and never blocks; what
// was accepted, including a batch not yet full, is routed once Run runs.
func TestOverflow(t *testing.T) {
	c := container(t, "name: a\nid: 1\ndeliver: {file: /x/a}\n")
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	r := router.New(router.Options{Backlog: 1024})
	s := &sink{}
	r.Set(tree, map[string]*router.Container{"a": router.NewContainer(c, s)})
	for i := range 4000 {
		r.Submit(1300, fmt.Appendf(nil, "audit(1700000000.123:%d): pid=1", i+1))
	}
	// Batches of 512: two fit in the backlog, five more overflow, and 416
	// records wait in the batch being filled.
	if got := r.Stats().Overflow; got != 2560 {
		t.Errorf("Overflow = %d, want 2560", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	cancel()
	<-done // Run routes what was submitted as it stops
	if got := r.Stats().Records; got != 1440 {
		t.Errorf("Records = %d, want 1440 (4000 submitted, 2560 overflowed)", got)
	}
}

// TestSubmitKeepsOrder submits events whose records straddle the batches
// the router takes them in, while it routes, and wants every event whole:
// a batch routed before one submitted earlier would split events (EOE
// first), leaving the rest to close by timeout as partial events.
func TestSubmitKeepsOrder(t *testing.T) {
	r, sinks, _ := setup(t, nil, "name: a\nid: 7\ndeliver: {file: /x/a}\n")
	const events = 20000
	for i := range events {
		for _, rec := range event(i+1, "7", "k") {
			typ, _ := record.TypeByName(rec[0])
			r.Submit(typ, []byte(rec[1]))
		}
		if i%500 == 0 {
			time.Sleep(time.Millisecond) // let the router fetch unfinished batches
		}
	}
	flush(r) // an event split in two is routed as two, the first partial
	st := r.Stats()
	if st.Events != events || st.Partial != 0 || st.Overflow != 0 {
		t.Errorf("stats %+v: want %d events, none partial, no overflow", st, events)
	}
	if got := len(waitLines(t, sinks["a"], 0)); got != 3*events {
		t.Errorf("a got %d lines, want %d", got, 3*events)
	}
}

// TestCgroupAttributionMovedLater: a process first seen outside every
// container and moved into one later is attributed to it for its events
// after the move: the attributor is asked for each event.
func TestCgroupAttributionMovedLater(t *testing.T) {
	var moved atomic.Bool
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		if pid == 100 && moved.Load() {
			return 0
		}
		return -1
	})
	_, sinks, submit := setup(t, attr, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
	submit(event(40, "", "k")...)
	if n := len(waitLines(t, sinks["a"], 0)); n != 0 {
		t.Fatalf("a got %d lines before the move", n)
	}
	moved.Store(true)
	submit(event(41, "", "k")...)
	if got := waitLines(t, sinks["a"], 2); len(got) != 2 || !strings.Contains(got[0], ":41)") {
		t.Errorf("after the move a got %q, want event 41", got)
	}
}

// TestCgroupAttributionPID: the pid is read from pid=, not from ppid= before
// it, also when pid= ends the record.
func TestCgroupAttributionPID(t *testing.T) {
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		if pid == 8 {
			return 0
		}
		return -1
	})
	_, sinks, submit := setup(t, attr, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
	// Each SYSCALL text with pid 8 told right is routed; the ones with
	// another pid are not.
	for i, tc := range []struct {
		text string
		want bool
	}{
		{"arch=c000003e syscall=59 success=yes exit=0 items=0 ppid=7 pid=8 auid=0", true},
		{"arch=c000003e syscall=59 per=400000 success=yes exit=0 items=0 ppid=7 pid=8", true},
		{"arch=c000003e syscall=59 success=no exit=-2 a0=1 a1=2 a2=3 a3=4 items=0 ppid=7x pid=8", true},
		{"arch=c000003e syscall=59 ppid=7 pid=81", false},
		{"arch=c000003e syscall=59 ppid=7 pid=9 auid=8", false},
		{"arch=c000003e syscall=59 opid=8", false},
	} {
		ts := fmt.Sprintf("audit(1700000000.123:%d): ", 50+i)
		before := len(waitLines(t, sinks["a"], 0))
		submit([2]string{"SYSCALL", ts + tc.text}, [2]string{"EOE", ts})
		n := 0
		if tc.want {
			n = 2
		}
		got := waitLines(t, sinks["a"], before+n)
		if len(got) != before+n {
			t.Errorf("%q: a got %d lines, want %d", tc.text, len(got)-before, n)
		}
	}
}

// With a routing delay, thousands of events are held while later batches
// arrive: a record buffer or batch reused too early would show as lines
// overwritten by later records. Every seventh event is attributed by
// cgroup to g, by an attributor never settled, so it waits for the delay;
// the others carry a chain to a and would not wait, but do behind it, to
// keep the order. With or without a node name, every line must reach its
// container as the host log has it, chains trimmed, each event whole and
// in order, also an event whose EOE comes after a pause longer than the
// delay.
//
// Nothing in it depends on timing: every event has its EOE and the event
// timeout is an hour, so no event closes by timeout, however long this
// goroutine is kept off the CPU between two records of one event (on a
// loaded machine it was, for over 50 ms, the timeout it had: the router
// then rightly closed the event without its EOE, and the EOE alone went
// nowhere). Stopping Run routes everything submitted, so the lines are
// read after it returns, with no deadline. The pauses only vary how many
// events are held at once, never what the containers must get.
func TestDelayedEventsRouteIntact(t *testing.T) {
	const delay = 30 * time.Millisecond
	for _, node := range []string{"", "h1"} {
		ca := container(t, "name: a\nid: 5\ndeliver: {file: /x/a}\n")
		cg := container(t, "name: g\ncgroup: /cg/g\ndeliver: {file: /x/g}\n")
		tree, err := registry.Build([]*registry.Container{ca, cg})
		if err != nil {
			t.Fatal(err)
		}
		r := router.New(router.Options{EventTimeout: time.Hour, Delay: delay, Node: node, Attribute: unsettled{}})
		sinks := map[string]*sink{"a": {}, "g": {}}
		r.Set(tree, map[string]*router.Container{"a": router.NewContainer(ca, sinks["a"]), "g": router.NewContainer(cg, sinks["g"])})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		const n = 6000
		want := map[string][]string{}
		for i := range n {
			to, chain := "a", fmt.Sprintf("%d,5", 1000+i)
			if i%7 == 0 {
				to, chain = "g", ""
			}
			for _, rec := range event(i+1, chain, fmt.Sprintf("k%d", i)) {
				typ, _ := record.TypeByName(rec[0])
				if rec[0] == "EOE" && i%1000 == 500 {
					time.Sleep(2 * delay) // the event's first records are fetched meanwhile
				}
				r.Submit(typ, []byte(rec[1]))
				if rec[0] == "CONTAINER_ID" {
					rec[1] = strings.Replace(rec[1], "contid="+chain, "contid=5", 1)
				}
				want[to] = append(want[to], strings.TrimSuffix(string(record.AppendLine(nil, node, typ, []byte(rec[1]))), "\n"))
			}
			if i%1000 == 999 {
				// Let batches of this thousand be added (and events held)
				// while later ones arrive.
				time.Sleep(5 * time.Millisecond)
			}
		}
		cancel()
		<-done // Run routed everything submitted before it returned
		for name, s := range sinks {
			got := s.lines
			if !slices.Equal(got, want[name]) {
				i := 0
				for i < min(len(got), len(want[name])) && got[i] == want[name][i] {
					i++
				}
				var g, w string
				if i < len(got) {
					g = got[i]
				}
				if i < len(want[name]) {
					w = want[name][i]
				}
				t.Fatalf("node %q: %s got %d lines, want %d; first difference at %d:\n got %q\nwant %q", node, name, len(got), len(want[name]), i, g, w)
			}
		}
		if st := r.Stats(); st.Malformed != 0 || st.Records != uint64(len(want["a"])+len(want["g"])) || st.Events != n || st.Partial != 0 {
			t.Errorf("node %q: stats %+v; want %d records in %d events, none malformed or partial", node, st, len(want["a"])+len(want["g"]), n)
		}
	}
}

// settledAttr attributes pids 100 and 200 to the first container and says
// it has learnt everything stamped before mark.
type settledAttr struct{ mark atomic.Int64 }

func (a *settledAttr) Attribute(pid, ppid uint32, at int64, dirs []string) int {
	if pid == 100 || pid == 200 {
		return 0
	}
	return -1
}
func (a *settledAttr) Settled(at int64) bool { return at < a.mark.Load() }

// With cgroup attribution and a delay, the events the attributor says are
// settled, and events with no pid, are routed as they close, not after the
// delay; an event stamped after what the attributor has learnt waits for
// the delay, and the events after it wait too, so a container gets its events
// in order.
//
// Load can only lengthen what is measured: a short delay is checked to be
// waited (no earlier), and "at once" is told from an hour's delay (a
// minute's bound), the events held then routed as Run stops.
func TestSettledPidSkipsDelay(t *testing.T) {
	c := container(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
	tree, err := registry.Build([]*registry.Container{c})
	if err != nil {
		t.Fatal(err)
	}
	start := func(delay time.Duration) (*router.Router, *settledAttr, *sink, func()) {
		attr := &settledAttr{}
		r := router.New(router.Options{EventTimeout: time.Hour, Delay: delay, Attribute: attr})
		s := &sink{}
		r.Set(tree, map[string]*router.Container{"a": router.NewContainer(c, s)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { r.Run(ctx); close(done) }()
		stop := sync.OnceFunc(func() { cancel(); <-done })
		t.Cleanup(stop)
		return r, attr, s, stop
	}
	submit := func(r *router.Router, serial, pid int, msec int) {
		ts := fmt.Sprintf("audit(1700000000.%03d:%d): ", msec, serial)
		r.Submit(record.TypeSyscall, []byte(fmt.Sprintf("%sarch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=%d auid=0", ts, pid)))
		r.Submit(record.TypeEOE, []byte(ts))
	}
	serials := func(lines []string) []int {
		var out []int
		for i := 0; i < len(lines); i += 2 {
			out = append(out, serialOf(lines[i]))
		}
		return out
	}

	const delay = 300 * time.Millisecond
	r, _, s, _ := start(delay)
	begin := time.Now()
	submit(r, 1, 100, 100)
	if got := waitLines(t, s, 2); len(got) != 2 || time.Since(begin) < delay {
		t.Fatalf("an event not settled: %d lines after %v, want 2 after the %v delay", len(got), time.Since(begin), delay)
	}

	r, attr, s, stop := start(time.Hour)
	attr.mark.Store(1700000000200 * 1e6)
	submit(r, 2, 100, 150)
	if got := waitLines(t, s, 2); len(got) != 2 {
		t.Fatalf("a settled event: %d lines, want 2 at once (the delay is an hour)", len(got))
	}
	// An event with no pid goes to nobody whenever it is routed: it holds
	// back nothing.
	ts := "audit(1700000000.500:5): "
	r.Submit(1305, []byte(ts+"op=set audit_enabled=1 old=1 auid=0 ses=1 res=1")) // CONFIG_CHANGE
	r.Submit(record.TypeEOE, []byte(ts))
	submit(r, 6, 100, 160)
	if got := waitLines(t, s, 4); len(got) != 4 {
		t.Fatalf("a settled event after an event with no pid: %d lines, want 4 at once", len(got))
	}
	submit(r, 3, 200, 300) // not settled: waits
	submit(r, 4, 100, 170) // behind it
	// Sync waits for them: it must not return (if load makes it time out
	// all the same, the check only weakens).
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err = r.Sync(ctx)
	cancel()
	if got := waitLines(t, s, 0); err == nil || len(got) != 4 {
		t.Errorf("events held for the delay: Sync returned %v, a got %v; want them held", err, serials(got))
	}
	stop()
	if got, want := serials(waitLines(t, s, 0)), []int{2, 6, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("a got events %v, want %v", got, want)
	}
}

// TestCgroupAttributionPidReused: two events of one pid 200ms apart, the
// pid reused in between by a process of another container. Each goes to
// the container its own process was in: nothing is remembered by pid
// alone (it was, for half a second).
func TestCgroupAttributionPidReused(t *testing.T) {
	const first = int64(1700000000123) * 1e6
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		if pid != 300 {
			return -1
		}
		want := "/cg/a"
		if at > first {
			want = "/cg/z" // the second process with pid 300
		}
		return slices.Index(dirs, want)
	})
	_, sinks, submit := setup(t, attr,
		"name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n",
		"name: z\ncgroup: /cg/z\ndeliver: {file: /x/z}\n")
	submit([2]string{"SYSCALL", "audit(1700000000.123:60): arch=c000003e syscall=59 ppid=1 pid=300"}, [2]string{"EOE", "audit(1700000000.123:60): "})
	waitLines(t, sinks["a"], 2)
	submit([2]string{"SYSCALL", "audit(1700000000.323:61): arch=c000003e syscall=59 ppid=1 pid=300"}, [2]string{"EOE", "audit(1700000000.323:61): "})
	if got := waitLines(t, sinks["z"], 2); len(got) != 2 || !strings.Contains(got[0], ":61)") {
		t.Errorf("z, whose process had pid 300 second, got %q, want event 61", got)
	}
	if got := waitLines(t, sinks["a"], 0); len(got) != 2 {
		t.Errorf("a, whose process had pid 300 first, got %q, want event 60 only", got)
	}
}

// TestCgroupAttributionUserText: a user message's own text (msg='...')
// names a ppid= and a pid= of a container's processes; the message comes
// from a host process. Only the fields the kernel wrote count: the event
// is the host's.
func TestCgroupAttributionUserText(t *testing.T) {
	var asked []string
	attr := attrFunc(func(pid, ppid uint32, at int64, dirs []string) int {
		asked = append(asked, fmt.Sprint(pid, " ", ppid))
		if pid == 8 || ppid == 7 {
			return 0 // the container's processes
		}
		return -1
	})
	r, sinks, submit := setup(t, attr, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
	submit([2]string{"USER_AVC", "audit(1700000000.123:70): pid=4000 uid=0 auid=0 ses=1 subj=unconfined msg='op=x ppid=7 pid=8 exe=\"/bin/x\"'"})
	submit([2]string{"USER", "audit(1700000000.124:71): msg='ppid=7 pid=8'"})
	flush(r) // user messages have no EOE
	// The USER_AVC event is attributed by the pid the kernel wrote; the
	// USER one names none.
	if got := waitLines(t, sinks["a"], 0); len(got) != 0 || !slices.Equal(asked, []string{"4000 0"}) {
		t.Errorf("a got %q; asked %q (want nothing, asked for pid 4000 only)", got, asked)
	}
}

// followAttr is an attributor that keeps what Follow told it.
type followAttr struct {
	attrFunc
	told [][]string
}

func (f *followAttr) Follow(dirs []string) { f.told = append(f.told, slices.Clone(dirs)) }

// TestFollowTellsTheAttributor checks that the attributor learns the
// registered cgroup directories: none when the router is made, then those
// of each Set (so that procs.Tracker reads no process while none is).
func TestFollowTellsTheAttributor(t *testing.T) {
	f := &followAttr{attrFunc: func(uint32, uint32, int64, []string) int { return -1 }}
	r := router.New(router.Options{Attribute: f})
	a := container(t, "name: a\ncgroup: /cg/a\ndeliver: {file: /x/a}\n")
	b := container(t, "name: b\ncgroup: /cg/a/b\nparent: a\ndeliver: {file: /x/b}\n")
	tree, err := registry.Build([]*registry.Container{a, b})
	if err != nil {
		t.Fatal(err)
	}
	r.Set(tree, map[string]*router.Container{"a": router.NewContainer(a, &sink{}), "b": router.NewContainer(b, &sink{})})
	empty, _ := registry.Build(nil)
	r.Set(empty, map[string]*router.Container{})
	want := [][]string{nil, {"/cg/a/b", "/cg/a"}, nil}
	if len(f.told) != len(want) {
		t.Fatalf("Follow was told %q, want %q", f.told, want)
	}
	for i := range want {
		if !slices.Equal(f.told[i], want[i]) {
			t.Errorf("Follow call %d: %q, want %q", i, f.told[i], want[i])
		}
	}
}
