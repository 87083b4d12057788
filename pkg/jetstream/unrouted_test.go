package jetstream

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// TestUnroutedToTenant: records the router left unrouted before a copy
// (its queue's Unrouted) reach the tenant's log through the stream as the
// same notice a file or remote target writes; an EOE that carries only
// the news is published as a notice alone.
func TestUnroutedToTenant(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	c.AddStreams(u.Admin, 1)
	q, err := queue.Open("", queue.Limits{Memory: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	subj, _ := TenantSubject("t1", "host-a")
	p := &Publisher{Conn: Conn{URL: c.URL(), Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a"},
		Subject: subj, Stream: natstest.TenantStream, Queue: q, AckTimeout: 2 * time.Second}
	un := queue.Unrouted{Records: 4096,
		First: queue.Stamp{Sec: 1764800000, Msec: 1, Serial: 6},
		Last:  queue.Stamp{Sec: 1764800000, Msec: 900, Serial: 2000}}
	q.Push([]byte("type=USER msg=audit(1764800000.001:5): pid=1 uid=0 auid=0 ses=1 msg='before'"))
	q.Unrouted(un)
	q.Push([]byte("type=USER msg=audit(1764800001.000:2001): pid=1 uid=0 auid=0 ses=1 msg='after'"))
	q.Unrouted(queue.Unrouted{Records: 512})
	q.Push([]byte("type=EOE msg=audit(1764800001.000:2001): "))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); q.Stats().Committed < q.Stats().Pushed; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not all published: %+v, queue %+v", p.Status(), q.Stats())
		}
	}
	cancel()
	wg.Wait()
	if st := p.Status(); st.LostNotices != 2 {
		t.Errorf("the publisher sent %d lost notices, want 2 (unrouted, unrouted alone)", st.LostNotices)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	st := consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 30*time.Second,
		func(s ConsumerStatus) bool { return s.LostNotices >= 2 && s.Written >= 2 })
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"node=host-a type=USER msg=audit(1764800000.001:5): pid=1 uid=0 auid=0 ses=1 msg='before'",
		"node=host-a type=DAEMON_ERR msg=audit(1764800001.000:0): op=queue-lost cause=router-overflow unrouted=4096 first=1764800000.001:6 last=1764800000.900:2000",
		"node=host-a type=USER msg=audit(1764800001.000:2001): pid=1 uid=0 auid=0 ses=1 msg='after'",
	}
	// The notice alone has no record to take its time from: now.
	alone := "): op=queue-lost cause=router-overflow unrouted=512"
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(got) != len(want)+1 || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") ||
		!strings.HasPrefix(got[len(want)], "node=host-a type=DAEMON_ERR msg=audit(") || !strings.HasSuffix(got[len(want)], alone) {
		t.Errorf("the tenant's log:\n%s\nwant:\n%s\n...%s\n(consumer %+v)", b, strings.Join(want, "\n"), alone, st)
	}
}

// TestParseUnrouted: the consumer takes an UnroutedHeader only as the
// publisher writes it; anything else (text to smuggle into the log, bad
// numbers) gives no notice.
func TestParseUnrouted(t *testing.T) {
	for _, v := range []string{"7", "7 first=1.005:3", "7 last=1.005:3", "7 first=1.005:3 last=2.000:9"} {
		u, ok := parseUnrouted(v)
		if !ok || formatUnrouted(u) != v {
			t.Errorf("parseUnrouted(%q) = %+v, %v; formats as %q", v, u, ok, formatUnrouted(u))
		}
	}
	for _, v := range []string{"", "0", "-1", "x", "7 ", "7 first=1.005:3 first=1.005:3", "7 last=1.005:3 first=1.005:3",
		"7 first=1.005:3\nnode=x type=USER", "7 first=1.005:3): x", "7 first=1.005:3 last=2.000:9 x", "18446744073709551616"} {
		if u, ok := parseUnrouted(v); ok {
			t.Errorf("parseUnrouted(%q) = %+v, want refused", v, u)
		}
	}
}
