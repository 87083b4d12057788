package deliver

import (
	"context"
	"os"
	"testing"
	"time"

	njs "github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/jetstream"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/registry"
)

// TestJetStreamTarget: a container whose file says deliver: {jetstream:
// ...} gets its copies into the tenant stream, on audit.tenant.NAME.HOST by
// default, committed once acknowledged.
func TestJetStreamTarget(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	subject, err := jetstream.TenantSubject("t1", host)
	if err != nil {
		t.Skipf("this machine's name makes no subject: %v", err)
	}
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	ct, err := registry.Parse([]byte("name: t1\nid: 7\ndeliver: {jetstream: {url: \""+c.URL()+"\", stream: AUDIT_TENANTS, credentials: "+u.Admin.SeedFile+"}}\n"), "t1.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := NewTarget(ct, Settings{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open("", queue.Limits{Memory: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for i := 0; i < 10; i++ {
		q.Push([]byte("type=USER msg=audit(1764800000.001:" + string(rune('0'+i)) + "): pid=1 uid=0 msg='x'"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tg.Run(ctx, q) }()
	deadline := time.Now().Add(20 * time.Second)
	for q.Stats().Committed < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tg.Close()
	if st := tg.Status(); st.Acked != 10 || q.Stats().Committed != 10 {
		t.Fatalf("acked %d, committed %d: %+v", st.Acked, q.Stats().Committed, st)
	}
	s, err := js.Stream(context.Background(), natstest.TenantStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstreamSubjects(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 10 {
		t.Errorf("%d messages on %s, want 10 (subjects %v)", n, subject, info.State.Subjects)
	}
}

func jetstreamSubjects(s string) njs.StreamInfoOpt { return njs.WithSubjectFilter(s) }
