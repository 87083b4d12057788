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
	"github.com/auditd-ns/auditd-ns/pkg/record"
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

// BenchmarkHostLogExport is the host log's write rate without an export
// (none) and with one, done as the daemon does it: format the line and
// push it to the export's queue, drained by a reader that commits at once
// (queue-only: the cost on the host log's own goroutine), and with the
// publisher sending to an R3 stream of a cluster on this machine
// (jetstream: the three servers and the publisher compete for the same
// cores).
func BenchmarkHostLogExport(b *testing.B) {
	data := []byte(`audit(1764800000.123:4567): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 a2=55d2 a3=0 items=2 ppid=1234 pid=5678 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="true" exe="/usr/bin/true" key="bench"`)
	for _, mode := range []string{"none", "queue-only", "jetstream"} {
		export := mode != "none"
		b.Run(mode, func(b *testing.B) {
			w, err := hostlog.Open(hostlog.Options{Path: filepath.Join(b.TempDir(), "audit.log")})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			var q *queue.Queue
			if export {
				q, err = queue.Open("", queue.Limits{Memory: 256 << 20}, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer q.Close()
			}
			switch mode {
			case "queue-only":
				// A reader that commits at once, so the queue stays as
				// small as a delivering one keeps it.
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() {
					defer close(done)
					for {
						items, err := q.Read(ctx, 512)
						if err != nil {
							return
						}
						q.Commit(items[len(items)-1].Seq)
					}
				}()
				defer func() { cancel(); <-done }()
			case "jetstream":
				c, u := benchCluster(b)
				_, stop := runPublisher(c, u, q)
				defer stop()
			}
			// As the daemon's export does: lines are pushed 64 at a time
			// (and whenever the source goes idle), one lock and one wake
			// of the publisher for all of them.
			var slab []byte
			var ends []int
			batch := make([][]byte, 0, exportBatch)
			push := func() {
				batch = batch[:0]
				start := 0
				for _, e := range ends {
					batch = append(batch, slab[start:e])
					start = e
				}
				q.PushAll(batch)
				slab, ends = slab[:0], ends[:0]
			}
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				w.Write(record.TypeSyscall, data)
				if q != nil {
					slab = record.AppendLine(slab, "", record.TypeSyscall, data)
					ends = append(ends, len(slab))
					if len(ends) == exportBatch {
						push()
					}
				}
			}
			if q != nil && len(ends) > 0 {
				push()
			}
			w.Flush()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			if q != nil {
				st := q.Stats()
				b.ReportMetric(float64(st.Dropped.Total()), "dropped")
			}
		})
	}
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

// exportBatch is the daemon's export batch (internal/daemon).
const exportBatch = 64
