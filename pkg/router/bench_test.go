package router_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

const tenRules = `rules:
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

// tree builds 10 roots, each with 10 children, each with 9 grandchildren:
// 1000 containers in a tree of depth 3, 10 rules each, memory-only queues.
func BenchTree(b *testing.B) (*registry.Tree, map[string]*router.Tenant, [][]uint64) {
	var cs []*registry.Container
	var chains [][]uint64
	id := uint64(1)
	add := func(name, parent string) uint64 {
		src := fmt.Sprintf("name: %s\nid: %d\ndeliver: {file: /x/%s}\nqueue: {memory: 64KiB}\n%s", name, id, name, tenRules)
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
				lid := add(fmt.Sprintf("%s-l%d", mn, l), mn)
				chains = append(chains, []uint64{lid, mid, rid})
			}
		}
	}
	tree, err := registry.Build(cs)
	if err != nil {
		b.Fatal(err)
	}
	tenants := map[string]*router.Tenant{}
	for _, c := range cs {
		q, err := queue.Open("", c.Queue, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { q.Close() })
		tenants[c.Name] = router.NewTenant(c, q)
	}
	return tree, tenants, chains
}

// BenchmarkIdleContainers reports the heap held per registered, idle
// container (memory-only queue, 10 rules), with 10,000 registered.
func BenchmarkIdleContainers(b *testing.B) {
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		var cs []*registry.Container
		tenants := map[string]*router.Tenant{}
		for i := range 10000 {
			src := fmt.Sprintf("name: c%d\nid: %d\ndeliver: {file: /x/c%d}\nqueue: {memory: 4MiB}\n%s", i, i+1, i, tenRules)
			c, err := registry.Parse([]byte(src), "f")
			if err != nil {
				b.Fatal(err)
			}
			q, _ := queue.Open("", c.Queue, nil)
			cs = append(cs, c)
			tenants[c.Name] = router.NewTenant(c, q)
		}
		tree, _ := registry.Build(cs)
		r := router.New(router.Options{Backlog: 1024})
		r.Set(tree, tenants)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/10000, "bytes/container")
		runtime.KeepAlive(r)
		runtime.KeepAlive(tenants)
	}
}
