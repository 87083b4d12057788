package remote_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// fakeQueue implements queue.Reader over a slice.
type fakeQueue struct {
	t         testing.TB
	mu        sync.Mutex
	items     []queue.Item
	read      int    // index of the next unread item
	committed uint64 // highest committed Seq
	rewinds   int
	notify    chan struct{}
}

func newFakeQueue(t testing.TB) *fakeQueue {
	return &fakeQueue{t: t, notify: make(chan struct{})}
}

// push appends items with the given lines; lost applies to the first.
func (q *fakeQueue) push(lost uint64, lines ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, l := range lines {
		q.items = append(q.items, queue.Item{Seq: uint64(len(q.items) + 1), Data: []byte(l), Lost: lost})
		lost = 0
	}
	close(q.notify)
	q.notify = make(chan struct{})
}

func (q *fakeQueue) Read(ctx context.Context, max int) ([]queue.Item, error) {
	for {
		q.mu.Lock()
		if q.read < len(q.items) {
			n := min(max, len(q.items)-q.read)
			out := append([]queue.Item(nil), q.items[q.read:q.read+n]...)
			q.read += n
			q.mu.Unlock()
			return out, nil
		}
		ch := q.notify
		q.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (q *fakeQueue) Commit(seq uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if seq > uint64(q.read) {
		q.t.Errorf("commit %d beyond the %d items read", seq, q.read)
	}
	if seq < q.committed {
		q.t.Errorf("commit %d after commit %d", seq, q.committed)
	}
	q.committed = seq
}

func (q *fakeQueue) Rewind() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.read = int(q.committed)
	q.rewinds++
}

func (q *fakeQueue) state() (committed uint64, rewinds int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.committed, q.rewinds
}

// action is what a fake receiver does with a frame.
type action struct {
	reply remote.Type
	text  string
	drop  bool // no reply
	close bool // close the connection after this frame (before replying)
}

// fakePeer is an in-process receiver on loopback that decodes frames and
// answers as its policy says.
type fakePeer struct {
	ln     net.Listener
	policy func(conn int, f remote.Frame) action

	mu     sync.Mutex
	lines  []string // acked message payloads, in order
	frames []remote.Frame
	conns  int
	wg     sync.WaitGroup
}

func ackAll(int, remote.Frame) action { return action{reply: remote.TypeAck} }

func startPeer(t testing.TB, policy func(conn int, f remote.Frame) action) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{ln: ln, policy: policy}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *fakePeer) addr() string { return p.ln.Addr().String() }

func (p *fakePeer) close() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *fakePeer) accept() {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		conns = append(conns, c)
		p.mu.Lock()
		p.conns++
		n := p.conns
		p.mu.Unlock()
		p.wg.Go(func() { p.serve(n, c) })
	}
}

func (p *fakePeer) serve(n int, c net.Conn) {
	defer c.Close()
	d := remote.NewDecoder(c, remote.MaxWirePayload)
	for {
		f, err := d.Decode()
		if err != nil {
			return
		}
		f.Payload = append([]byte(nil), f.Payload...)
		a := p.policy(n, f)
		p.mu.Lock()
		p.frames = append(p.frames, f)
		if !a.drop && !a.close && a.reply == remote.TypeAck && f.Type == remote.TypeMessage {
			p.lines = append(p.lines, string(f.Payload))
		}
		p.mu.Unlock()
		if a.close {
			return
		}
		if a.drop {
			continue
		}
		b, _ := remote.AppendFrame(nil, remote.Frame{Type: a.reply, Seq: f.Seq, Payload: []byte(a.text)})
		if _, err := c.Write(b); err != nil {
			return
		}
	}
}

func (p *fakePeer) snapshot() (lines []string, frames []remote.Frame, conns int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...), append([]remote.Frame(nil), p.frames...), p.conns
}

// runSender starts s.Run and stops it when the test ends.
func runSender(t testing.TB, s *remote.Sender) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func records(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("type=USER msg=audit(1700000000.%03d:%d): %s n=%d", i%1000, i+1, prefix, i)
	}
	return out
}

// rawConn dials addr and returns the connection.
func rawConn(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer reports whether the peer closed c within d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err != nil {
			return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
		}
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}
