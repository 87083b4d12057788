package jetstream

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
)

// ackEater is a TCP relay between clients and one server that can drop
// everything the server sends (its publish acks among it) while passing
// on all the clients send, and cut the connections: the server stores
// what was published, the publisher never hears of it.
type ackEater struct {
	l      net.Listener
	target string
	eat    atomic.Bool
	refuse atomic.Bool // close new connections at once
	eaten  atomic.Int64
	mu     sync.Mutex
	conns  []net.Conn
}

func newAckEater(t *testing.T, target string) *ackEater {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackEater{l: l, target: strings.TrimPrefix(target, "nats://")}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.refuse.Load() {
				c.Close()
				continue
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := s.Read(buf)
					if n > 0 {
						if p.eat.Load() {
							p.eaten.Add(int64(n))
						} else if _, werr := c.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				c.Close()
			}()
		}
	}()
	return p
}

func (p *ackEater) url() string { return "nats://" + p.l.Addr().String() }

// cut closes every relayed connection.
func (p *ackEater) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// storedOn is how many messages stream holds on subject, asked directly.
func storedOn(t testing.TB, js jetstream.JetStream, stream, subject string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// waitFor polls cond for up to d, and fails with what.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPublishAckLost: the server stores a stretch of records but their
// acks never reach the publisher (a relay drops what the server sends,
// then the connection breaks). The publisher sends them again under the
// same Nats-Msg-Ids after its ack timeout, and the stream keeps each
// record once: the resent ones are acknowledged as duplicates. Without
// the ids, the stream would hold the stretch twice.
func TestPublishAckLost(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	relay := newAckEater(t, c.URLs()[0])
	const subject = "audit.host.host-a"
	q := openQueue(t)
	p := &Publisher{Conn: Conn{URL: relay.url(), Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a", MaxBackoff: 500 * time.Millisecond},
		Subject: subject, Stream: natstest.HostStream, Queue: q, AckTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	lines, n := records("host-a", 600)
	half := len(lines) / 2
	for _, l := range lines[:half] {
		q.Push(l)
	}
	waitFor(t, 30*time.Second, "the first half not committed", func() bool { return q.Stats().Committed == uint64(half) })
	first := p.Status().Acked

	// The second half: stored, its acks lost.
	relay.eat.Store(true)
	for _, l := range lines[half:] {
		q.Push(l)
	}
	waitFor(t, 30*time.Second, "the second half not stored", func() bool { return storedOn(t, js, natstest.HostStream, subject) == uint64(n) })
	waitFor(t, 30*time.Second, "no ack timed out", func() bool { return p.Status().Retried > 0 })
	if st := p.Status(); st.Acked != first {
		t.Fatalf("acks came through the relay: %+v", st)
	}
	relay.eat.Store(false)
	relay.cut()

	waitFor(t, 60*time.Second, "the second half not committed", func() bool { return q.Stats().Committed == uint64(len(lines)) })
	st := p.Status()
	t.Logf("published %d acked %d duplicates %d retried %d connects %d; %d bytes from the server dropped", st.Published, st.Acked, st.Duplicates, st.Retried, st.Connects, relay.eaten.Load())
	if st.Duplicates == 0 || st.Connects < 2 {
		t.Errorf("no record was sent again after the lost acks: %+v", st)
	}
	// The second half's acks as new were lost: each came back once more,
	// as a duplicate.
	if st.Acked != first || st.Acked+st.Duplicates != uint64(n) {
		t.Errorf("acked %d new (%d before the loss) and %d duplicates, for %d records", st.Acked, first, st.Duplicates, n)
	}
	exactlyOnce(t, subject, streamLines(t, js, natstest.HostStream, subject), n)
}

// cutLog is a consumer's log that, at its first flush, flushes, then
// cuts the consumer's connection and refuses the next ones, and ends its
// Run: the lines are in the file, their ack never reaches the server.
type cutLog struct {
	LineWriter
	relay  *ackEater
	cancel context.CancelFunc
	once   sync.Once
}

func (l *cutLog) Flush() error {
	err := l.LineWriter.Flush()
	l.once.Do(func() {
		l.relay.refuse.Store(true)
		l.relay.cut()
		l.cancel()
	})
	return err
}

// TestConsumerRedeliveredNotWrittenTwice: a consumer writes and flushes
// its first batch, then loses its connection before its ack reaches the
// server and stops (a crash). Restarted with the same SeqFile, it is
// given that batch again by the server (Redelivered): it acknowledges it
// without writing it twice, and writes the rest, each record once. Without
// SeqFile's sequence the batch would be in the log twice (at least once:
// docs/jetstream.md).
func TestConsumerRedeliveredNotWrittenTwice(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	const n = 500
	lines, _ := records("host-a", n)
	subj, _ := TenantSubject("t1", "host-a")
	publishAll(t, c, u.HostA, "host-a", subj, natstest.TenantStream, lines)
	relay := newAckEater(t, c.URLs()[0])
	dir := t.TempDir()
	path, seqFile := filepath.Join(dir, "audit.log"), filepath.Join(dir, "t1.seq")
	w := openLog(t, path)
	run := func(log LineWriter, ctx context.Context, cond func(ConsumerStatus) bool) ConsumerStatus {
		cs := &Consumer{Conn: Conn{URL: relay.url(), Credentials: u.T1.SeedFile, InboxPrefix: "_INBOX_t1", MaxBackoff: 200 * time.Millisecond},
			Stream: natstest.TenantStream, Durable: "t1", Filter: "audit.tenant.t1.>", Log: log, Batch: 100,
			SeqFile: seqFile, ackWait: time.Second}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- cs.Run(ctx) }()
		deadline := time.Now().Add(60 * time.Second)
		for ctx.Err() == nil && !cond(cs.Status()) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return cs.Status()
	}
	ctx, cancel := context.WithCancel(context.Background())
	st := run(&cutLog{LineWriter: w, relay: relay, cancel: cancel}, ctx, func(ConsumerStatus) bool { return false })
	if st.Written != 100 {
		t.Fatalf("first run: %+v, want the first batch of 100 written", st)
	}
	// The durable holds the batch as delivered, not acknowledged.
	cons, err := js.Consumer(context.Background(), natstest.TenantStream, "t1")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 0 || info.NumAckPending == 0 {
		t.Fatalf("the first batch's ack reached the server: ack floor %d, pending acks %d", info.AckFloor.Stream, info.NumAckPending)
	}

	// Restarted once the ack wait is over, the consumer is given the
	// batch again first (restarted sooner, its ack of later messages,
	// AckAll, would cover the batch).
	time.Sleep(1500 * time.Millisecond)
	relay.refuse.Store(false)
	st = run(w, context.Background(), func(s ConsumerStatus) bool { return s.Acked >= n && s.Pending == 0 })
	t.Logf("second run: written %d acked %d redelivered %d already written %d", st.Written, st.Acked, st.Redelivered, st.AlreadyWritten)
	if st.Redelivered < 100 {
		t.Error("the server did not deliver the first batch again: the lost ack was not tested")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for l := range bytes.Lines(b) {
		got = append(got, l)
	}
	exactlyOnce(t, "the consumer's log", got, n)
}

// TestSeqFile: a missing SeqFile reads as 0, a written one as its
// sequence, and one that holds anything else is an error naming it, with
// the file open to be rewritten from 0.
func TestSeqFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t1.seq")
	f, seq, err := openSeqFile(path)
	if err != nil || seq != 0 {
		t.Fatalf("new file: %d, %v", seq, err)
	}
	c := &Consumer{SeqFile: path, seqF: f, written: 1234567}
	if err := c.saveSeq(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if f, seq, err = openSeqFile(path); err != nil || seq != 1234567 {
		t.Fatalf("written file: %d, %v", seq, err)
	}
	f.Close()
	for _, bad := range []string{"12\n", "0000000000000000000x\n", strings.Repeat("9", 20) + "\n", "00000000000000000001\n\n"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		f, seq, err := openSeqFile(path)
		if f == nil || seq != 0 || err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: %d, %v, want an error naming the file", bad, seq, err)
		}
		if f != nil {
			f.Close()
		}
	}
}
