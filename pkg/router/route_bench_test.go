package router

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

const benchRules = `rules:
  - drop: {key: noisy}
  - keep: {syscall: [execve, execveat], success: yes}
  - drop: {exe: {prefix: /usr/lib/}}
  - keep: {key: [identity, audit-config]}
  - drop: {field: {comm: cron}}
  - keep: {path: [/etc/shadow, "/home/*/.ssh/*"]}
  - drop: {auid: unset}
  - keep: {type: [USER_LOGIN, AVC]}
  - keep: {uid: 0}
  - default: drop
`

// BenchmarkRoute is the router's whole per-record path on one core: parse,
// assemble, find the chain, filter through each container's 10 rules,
// format and push the copies into memory queues. The stream is execve
// events of 6 records (SYSCALL, EXECVE, CWD, PATH, CONTAINER_ID, EOE) from
// the leaves of a 1000-container tree of depth 3, so each event is filtered
// by 3 containers and copied to those whose rules keep it. One op is one
// record.
//
// In "healthy" the queues are drained (outside the timer) every 16,384
// records, as containers that keep up are; in "stalled" nobody reads them, so
// every push drops the oldest copies of a full queue.
func BenchmarkRoute(b *testing.B) {
	b.Run("healthy", func(b *testing.B) { benchmarkRoute(b, true, benchRules) })
	b.Run("stalled", func(b *testing.B) { benchmarkRoute(b, false, benchRules) })
}

// BenchmarkRouteView is Route/healthy with every container in the host
// view (as Route) and in the container view: each of its copies translated
// (pids through a map, uids and gids through a uid_map of one line), so
// that the difference is the translation's cost.
func BenchmarkRouteView(b *testing.B) {
	b.Run("host", func(b *testing.B) { benchmarkRouteView(b, true, benchRules, false) })
	b.Run("container", func(b *testing.B) { benchmarkRouteView(b, true, benchRules, true) })
}

// benchNS is a container's namespaces as the benchmark's: a pid map and
// rootless uid and gid maps.
type benchNS struct {
	pids     map[uint32]uint32
	uid, gid view.IDMap
}

func (n *benchNS) Pid(p uint32, _ int64) uint32 { return n.pids[p] }
func (n *benchNS) UID(id uint32) uint32         { return n.uid.Map(id) }
func (n *benchNS) GID(id uint32) uint32         { return n.gid.Map(id) }

func benchmarkRoute(b *testing.B, drain bool, rulesYAML string) {
	benchmarkRouteView(b, drain, rulesYAML, false)
}

func benchmarkRouteView(b *testing.B, drain bool, rulesYAML string, viewed bool) {
	var cs []*registry.Container
	var chains [][]uint64
	id := uint64(1)
	add := func(name, parent string) uint64 {
		src := fmt.Sprintf("name: %s\nid: %d\ndeliver: {file: /x/%s}\nqueue: {memory: 64KiB}\n%s", name, id, name, rulesYAML)
		if parent != "" {
			src += "parent: " + parent + "\n"
		}
		c, err := registry.Parse([]byte(src), name)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
		id++
		return c.ID
	}
	for r := range 10 {
		rn := fmt.Sprintf("r%d", r)
		rid := add(rn, "")
		for m := range 10 {
			mn := fmt.Sprintf("%s-m%d", rn, m)
			mid := add(mn, rn)
			for l := range 9 {
				chains = append(chains, []uint64{add(fmt.Sprintf("%s-l%d", mn, l), mn), mid, rid})
			}
		}
	}
	tree, err := registry.Build(cs)
	if err != nil {
		b.Fatal(err)
	}
	containers := map[string]*Container{}
	var queues []*queue.Queue
	for _, c := range cs {
		q, _ := queue.Open("", c.Queue, nil)
		b.Cleanup(func() { q.Close() })
		containers[c.Name] = NewContainer(c, q)
		queues = append(queues, q)
	}
	if viewed {
		u, _ := view.ParseIDMap([]byte("0 100000 65536\n"))
		for _, t := range containers {
			t.SetView(&benchNS{pids: map[uint32]uint32{1000: 1, 1001: 2}, uid: u, gid: u})
		}
	}
	empty := func() {
		for _, q := range queues {
			for q.Stats().MemoryItems > 0 {
				items, err := q.Read(context.Background(), 1<<20)
				if err != nil {
					b.Fatal(err)
				}
				q.Commit(items[len(items)-1].Seq)
			}
		}
	}
	r := New(Options{})
	r.Set(tree, containers)
	type input struct {
		typ uint16
		buf []byte
	}
	var recs []input
	for i := range 900 {
		ts := fmt.Sprintf("audit(1700000000.123:%d): ", i+1)
		ch := string(record.AppendChain(nil, chains[i%len(chains)]))
		recs = append(recs, []input{
			{1300, []byte(ts + `arch=c000003e syscall=59 success=yes exit=0 a0=55d5 a1=55d6 a2=55d7 a3=0 items=2 ppid=1000 pid=1001 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key="exec"`)},
			{1309, []byte(ts + `argc=2 a0="ls" a1="-l"`)},
			{1307, []byte(ts + `cwd="/root"`)},
			{1302, []byte(ts + `item=0 name="/usr/bin/ls" inode=123 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`)},
			{1340, []byte(ts + "record=1300 contid=" + ch)},
			{1320, []byte(ts)},
		}...)
	}
	var rec record.Record
	now := time.Now()
	noRelease := func([]byte) {}
	var drainCPU time.Duration
	run := func(n int) {
		for i := range n {
			if drain && i%16384 == 16383 {
				b.StopTimer()
				c := threadCPU()
				empty()
				drainCPU += threadCPU() - c
				b.StartTimer()
			}
			in := recs[i%len(recs)]
			if err := record.Parse(&rec, in.typ, in.buf); err != nil {
				b.Fatal(err)
			}
			r.asm.Add(&rec, in.buf, now, noRelease)
		}
	}
	// One locked thread, so that its CPU time is the routing's: on a busy
	// shared machine wall time grows with the load and CPU time does not.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	run(512<<10 + 5400) // warm the pools; fill the queues when not drained
	if drain {
		checkCopies(b, queues, viewed)
	}
	b.ReportAllocs()
	b.ResetTimer()
	drainCPU = 0
	cpu := threadCPU()
	run(b.N)
	cpu = threadCPU() - cpu - drainCPU
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	if cpu > 0 {
		b.ReportMetric(float64(b.N)/cpu.Seconds(), "records/cpu-s")
	}
	var copies uint64
	for _, t := range containers {
		copies += t.Stats().Records
	}
	if copies == 0 {
		b.Fatal("no copies were made")
	}
	if viewed {
		b.ReportMetric(float64(copies)/float64(b.N+512<<10+5400), "copies/record")
	}
}

// checkCopies reads the copies queued and fails unless their SYSCALL lines
// are in the view asked for.
func checkCopies(b *testing.B, queues []*queue.Queue, viewed bool) {
	want := []byte(" ppid=1000 pid=1001 auid=1000 uid=0 ")
	if viewed {
		want = []byte(" ppid=1 pid=2 auid=65534 uid=65534 ")
	}
	seen := 0
	for _, q := range queues {
		for q.Stats().MemoryItems > 0 {
			items, err := q.Read(context.Background(), 1<<20)
			if err != nil {
				b.Fatal(err)
			}
			for _, it := range items {
				if bytes.HasPrefix(it.Data, []byte("type=SYSCALL ")) {
					if !bytes.Contains(it.Data, want) {
						b.Fatalf("copy not in the view (viewed %v): %s", viewed, it.Data)
					}
					seen++
				}
			}
			q.Commit(items[len(items)-1].Seq)
		}
	}
	if seen == 0 {
		b.Fatal("no SYSCALL copies queued")
	}
}

// threadCPU returns the CPU time the calling thread has used.
func threadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkIdleContainers reports the heap held per registered, idle
// container (memory-only queue, 10 rules), with 10,000 registered.
func BenchmarkIdleContainers(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var cs []*registry.Container
		containers := map[string]*Container{}
		for i := range 10000 {
			src := fmt.Sprintf("name: c%d\nid: %d\ndeliver: {file: /x/c%d}\nqueue: {memory: 4MiB}\n%s", i, i+1, i, benchRules)
			c, err := registry.Parse([]byte(src), "f")
			if err != nil {
				b.Fatal(err)
			}
			q, _ := queue.Open("", c.Queue, nil)
			cs = append(cs, c)
			containers[c.Name] = NewContainer(c, q)
		}
		tree, _ := registry.Build(cs)
		r := New(Options{Backlog: 1024})
		r.Set(tree, containers)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10000, "bytes/container")
		runtime.KeepAlive(r)
		runtime.KeepAlive(containers)
	}
}
