package jetstream

import (
	"context"
	"io"
	"net"
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
func storedOn(t *testing.T, js jetstream.JetStream, stream, subject string) uint64 {
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
