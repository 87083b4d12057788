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
