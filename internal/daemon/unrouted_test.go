package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/internal/config"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/router"
)

// TestRouterOverflowToldToTenants: records the router leaves unrouted
// (its backlog, here 1,024 records, overflows while it is stalled) are
// told to every registered container, in its delivered file, before its
// next copy: the container whose records they were and one that had none
// of them, each by a queue-lost notice saying the cause, the count and the
// first and last record. Status and metrics count them as router-overflow
// drops, and the host log has every record. The path is the daemon's own
// from the receive on: ingest (host log, router), the router, each
// container's queue and its file target.
func TestRouterOverflowToldToTenants(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.StateDir = dir
	d := newDaemon(context.Background(), cfg, hclog.NewNullLogger())
	d.router = router.New(router.Options{Backlog: 1024}) // not running yet: stalled
	store, err := registry.OpenStore(filepath.Join(dir, "containers"))
	if err != nil {
		t.Fatal(err)
	}
	d.conts = d.newContainers(store, nil)
	hl, err := hostlog.Open(hostlog.Options{Path: filepath.Join(dir, "audit.log")})
	if err != nil {
		t.Fatal(err)
	}
	d.hlog = hl
	t.Cleanup(func() {
		if err := d.stopServices(); err != nil {
			t.Error(err)
		}
		hl.Close()
	})
	var cs []*registry.Container
	for _, src := range []string{"name: a\nid: 1\ndeliver: {file: %s/a/audit.log}\n", "name: b\nid: 2\ndeliver: {file: %s/b/audit.log}\n"} {
		c, err := registry.Parse(fmt.Appendf(nil, src, dir), "c.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	if err := d.conts.Load(d.life, cs); err != nil {
		t.Fatal(err)
	}
	event := func(serial int, contid string) {
		ts := fmt.Sprintf("audit(1700000000.123:%d): ", serial)
		d.ingest(record.TypeSyscall, []byte(ts+`arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=100 auid=1000 uid=0 comm="true" exe="/usr/bin/true"`))
		d.ingest(record.TypeContainerID, []byte(ts+"record=1300 contid="+contid))
		d.ingest(record.TypeEOE, []byte(ts))
	}
	// 1,400 events of a, 3 records each: records 1..1024 wait for the
	// router, 1025..4096 (from event 342's second to event 1366's first)
	// overflow, the rest wait in the batch being filled.
	for i := range 1400 {
		event(i+1, "1")
	}
	d.checkOverflow()
	ctx, cancel := context.WithCancel(d.life)
	d.routerStop, d.routerDone = cancel, make(chan struct{})
	d.serve("router", func() error {
		defer close(d.routerDone)
		return d.router.Run(ctx)
	})
	event(5000, "2")
	event(5001, "1")
	if err := d.router.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	const notice = "op=queue-lost cause=router-overflow unrouted=3072 first=1700000000.123:342 last=1700000000.123:1366"
	for _, c := range []struct{ name, next string }{{"a", ":1366): record=1300 contid=1"}, {"b", ":5000): arch="}} {
		path := filepath.Join(dir, c.name, "audit.log")
		var b []byte
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if b, _ = os.ReadFile(path); strings.Contains(string(b), ":5001)") || c.name == "b" && strings.Contains(string(b), ":5000)") {
				break
			}
		}
		lines := strings.Split(string(b), "\n")
		at := -1
		for i, l := range lines {
			if strings.Contains(l, "op=queue-lost") {
				if at >= 0 || !strings.HasPrefix(l, "type=DAEMON_ERR msg=audit(1700000000.123:0): "+notice) {
					t.Errorf("%s: notice %q, want one saying %q", c.name, l, notice)
				}
				at = i
			}
		}
		if at < 0 || at+1 >= len(lines) || !strings.Contains(lines[at+1], c.next) {
			t.Errorf("%s: no notice before its first copy after the overflow (%q):\n%.2000s", c.name, c.next, b)
		}
	}
	b := backend{d}
	infos, err := b.Containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, info := range infos {
		if info.Drops["router-overflow"] != 3072 || info.Dropped != 3072 {
			t.Errorf("%s: dropped %d, drops %v: want 3072 router-overflow", info.Name, info.Dropped, info.Drops)
		}
	}
	body := scrapeMetrics(t, b)
	for _, name := range []string{"a", "b"} {
		if want := `auditd_ns_container_dropped_copies_total{container="` + name + `",reason="router-overflow"} 3072`; !strings.Contains(string(body), want) {
			t.Errorf("the metrics lack %q", want)
		}
	}
	// The host log has every record, and says what was left unrouted.
	if err := hl.Flush(); err != nil {
		t.Fatal(err)
	}
	hb, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(hb), "msg=audit(1700000000.123:"); got != 3*1402 {
		t.Errorf("the host log has %d of the %d records", got, 3*1402)
	}
	if !strings.Contains(string(hb), "op=router-overflow unrouted=3072 new=3072") {
		t.Errorf("the host log does not say op=router-overflow unrouted=3072")
	}
}
