package jetstream

import (
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// Run with a fixed count, as docs/BENCHMARKS.md does:
//
//	go test -run '^$' -bench . -benchtime 200000x ./pkg/jetstream

// benchCluster is a 3-node cluster with R3 streams.
func benchCluster(b *testing.B) (*natstest.Cluster, natstest.Users) {
	u := natstest.NewUsers(b)
	c := natstest.Start(b, 3, u)
	c.AddStreams(u.Admin, 3)
	return c, u
}

// runPublisher starts a publisher of host-a on q; stop ends it.
func runPublisher(c *natstest.Cluster, u natstest.Users, q *queue.Queue) (p *Publisher, stop func()) {
	p = &Publisher{Conn: Conn{URL: c.URL(), Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a"},
		Subject: "audit.host.host-a", Stream: natstest.HostStream, Queue: q}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(ctx) }()
	return p, func() { cancel(); wg.Wait() }
}

func waitCommitted(b *testing.B, q *queue.Queue) {
	deadline := time.Now().Add(10 * time.Minute)
	for st := q.Stats(); st.Committed < st.Pushed; st = q.Stats() {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d committed", st.Committed, st.Pushed)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPublishR3 is one host's publishing rate to an R3 stream on
// loopback, from a full queue to the last ack.
func BenchmarkPublishR3(b *testing.B) {
	c, u := benchCluster(b)
	q := openQueue(b)
	lines, _ := records("host-a", b.N)
	for _, l := range lines {
		q.Push(l)
	}
	b.ResetTimer()
	start := time.Now()
	_, stop := runPublisher(c, u, q)
	waitCommitted(b, q)
	el := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
}

// BenchmarkConsumeR3 is a consumer's rate from an R3 stream into an
// auditd log (flush incremental_async), from the first fetch to the last
// ack.
func BenchmarkConsumeR3(b *testing.B) {
	c, u := benchCluster(b)
	q := openQueue(b)
	lines, _ := records("host-a", b.N)
	for _, l := range lines {
		q.Push(l)
	}
	_, stop := runPublisher(c, u, q)
	waitCommitted(b, q)
	stop()
	w, err := hostlog.Open(hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log")})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cs := &Consumer{Conn: Conn{URL: c.URL(), Credentials: u.Admin.SeedFile}, Stream: natstest.HostStream,
		Durable: "bench", Filter: "audit.host.>", Log: w, Batch: 1024}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { defer close(done); cs.Run(ctx) }()
	for cs.Status().Acked < uint64(b.N) {
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("consumed %d of %d", cs.Status().Acked, b.N)
		}
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
}

// BenchmarkBareR3 is nats.go's own async publishing to the same R3
// stream, with no queue and no waiting per batch: the ceiling the
// publisher is measured against.
func BenchmarkBareR3(b *testing.B) {
	c, u := benchCluster(b)
	nc := c.Connect(u.Admin)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	lines, _ := records("host-a", b.N)
	b.ResetTimer()
	start := time.Now()
	for i, l := range lines {
		if _, err := js.PublishAsync("audit.host.host-a", l, jetstream.WithMsgID(strconv.Itoa(i)), jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
}
