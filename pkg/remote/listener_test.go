package remote_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// sink collects handled lines.
type sink struct {
	mu    sync.Mutex
	lines []string
	fail  error
}

func (s *sink) handle(line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.lines = append(s.lines, string(line))
	return nil
}

func (s *sink) get() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// logBuf is a concurrency-safe log destination.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startListener runs l on a loopback port until the test ends.
func startListener(t testing.TB, l *remote.Listener) (addr string, logs *logBuf) {
	t.Helper()
	logs = &logBuf{}
	if l.Logger == nil {
		l.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	}
	if l.Allow == nil {
		l.Allow = loopback // an empty, non-nil list tests refusing all
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return ln.Addr().String(), logs
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

func frame(t remote.Type, seq uint32, payload string) []byte {
	b, _ := remote.AppendFrame(nil, remote.Frame{Type: t, Seq: seq, Payload: []byte(payload)})
	return b
}

// readReplies reads n replies from c.
func readReplies(t testing.TB, c net.Conn, n int) []remote.Frame {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	d := remote.NewDecoder(c, 0)
	var out []remote.Frame
	for range n {
		f, err := d.Decode()
		if err != nil {
			t.Fatalf("reply %d of %d: %v", len(out)+1, n, err)
		}
		f.Payload = slices.Clone(f.Payload)
		out = append(out, f)
	}
	return out
}

func TestListenerHandlesThenAcks(t *testing.T) {
	var s sink
	addr, _ := startListener(t, &remote.Listener{Handle: s.handle})
	c := rawConn(t, addr)
	var in []byte
	in = append(in, frame(remote.TypeMessage, 10, "type=USER msg=audit(1.000:1): a")...)
	in = append(in, frame(remote.TypeHeartbeat, 11, "")...)
	in = append(in, frame(remote.TypeMessage, 12, "type=USER msg=audit(1.000:2): b\n")...)           // audisp-remote keeps the newline
	in = append(in, frame(remote.TypeMessage, 13, "type=USER msg=audit(1.000:3): c\nforged\x00")...) // never two lines
	c.Write(in)
	replies := readReplies(t, c, 4)
	for i, r := range replies {
		if r.Type != remote.TypeAck || r.Seq != uint32(10+i) {
			t.Errorf("reply %d: %s %d, want ack %d", i, r.Type, r.Seq, 10+i)
		}
	}
	want := []string{"type=USER msg=audit(1.000:1): a", "type=USER msg=audit(1.000:2): b", "type=USER msg=audit(1.000:3): c?forged?"}
	if got := s.get(); !slices.Equal(got, want) {
		t.Errorf("handled %q, want %q", got, want)
	}
}

func TestListenerAckOnlyAfterHandle(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	l := &remote.Listener{Handle: func([]byte) error {
		entered <- struct{}{}
		<-release
		return nil
	}}
	addr, _ := startListener(t, l)
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): a"))
	<-entered
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("got %d reply bytes before Handle returned", n)
	}
	close(release)
	if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeAck {
		t.Errorf("reply %s", r.Type)
	}
}

func TestListenerHandleErrors(t *testing.T) {
	s := sink{fail: fmt.Errorf("writing log: %w", syscall.ENOSPC)}
	addr, _ := startListener(t, &remote.Listener{Handle: s.handle})
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): a"))
	if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeDiskFull || string(r.Payload) != "disk full" {
		t.Errorf("reply %s %q, want disk full", r.Type, r.Payload)
	}
	s.mu.Lock()
	s.fail = errors.New("EIO")
	s.mu.Unlock()
	c.Write(frame(remote.TypeMessage, 2, "type=USER msg=audit(1.000:2): b"))
	if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeDiskError || r.Seq != 2 {
		t.Errorf("reply %s %d, want disk error 2", r.Type, r.Seq)
	}
}

func TestListenerBadPeers(t *testing.T) {
	good := frame(remote.TypeMessage, 1, "type=USER msg=audit(1.000:1): ok")
	oversize := frame(remote.TypeMessage, 2, "x")
	binary.LittleEndian.PutUint16(oversize[10:], 60000)
	tests := []struct {
		name, in, reason string
	}{
		{"garbage", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "bad magic"},
		{"oversize length", string(oversize), "payload too long"},
		{"bad version", string(good[:4]) + "\x01" + string(good[5:]), "bad version"},
		{"reply from client", string(frame(remote.TypeAck, 5, "")), "unexpected frame type"},
		{"half frame", string(good[:20]), "frame incomplete"},
		{"half header", string(good[:5]), "frame incomplete"},
	}
	var s sink
	l := &remote.Listener{Handle: s.handle, MaxPayload: 1000, FrameTimeout: 100 * time.Millisecond}
	addr, logs := startListener(t, l)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rawConn(t, addr)
			c.Write(good) // a good frame first: its ack still arrives
			c.Write([]byte(tt.in))
			if r := readReplies(t, c, 1)[0]; r.Type != remote.TypeAck {
				t.Errorf("good frame answered with %s", r.Type)
			}
			if !closedByPeer(c, 2*time.Second) {
				t.Fatal("connection left open")
			}
			waitFor(t, "the logged reason", 2*time.Second, func() bool { return strings.Contains(logs.String(), tt.reason) })
		})
	}
	// The server still serves.
	c := rawConn(t, addr)
	c.Write(good)
	readReplies(t, c, 1)
	if st := l.Status(); st.BadFrames != uint64(len(tests)) || st.Records != uint64(len(tests)+1) {
		t.Errorf("status %+v", st)
	}
}

func TestListenerMaxConns(t *testing.T) {
	var s sink
	l := &remote.Listener{Handle: s.handle, MaxConns: 2}
	addr, logs := startListener(t, l)
	a, b := rawConn(t, addr), rawConn(t, addr)
	for i, c := range []net.Conn{a, b} {
		c.Write(frame(remote.TypeHeartbeat, uint32(i), ""))
		readReplies(t, c, 1)
	}
	third := rawConn(t, addr)
	if !closedByPeer(third, 2*time.Second) {
		t.Fatal("third connection left open")
	}
	waitFor(t, "the logged reason", 2*time.Second, func() bool { return strings.Contains(logs.String(), "too many connections") })
	a.Close()
	waitFor(t, "the slot to free", 2*time.Second, func() bool { return l.Status().Conns == 1 })
	c := rawConn(t, addr)
	c.Write(frame(remote.TypeHeartbeat, 9, ""))
	readReplies(t, c, 1)
}

func TestListenerAllowList(t *testing.T) {
	var s sink
	l := &remote.Listener{Handle: s.handle, Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	addr, logs := startListener(t, l)
	c := rawConn(t, addr)
	if !closedByPeer(c, 2*time.Second) {
		t.Fatal("peer outside the allow list left connected")
	}
	waitFor(t, "the logged reason", 2*time.Second, func() bool { return strings.Contains(logs.String(), "peer address not allowed") })
	l2 := &remote.Listener{Handle: s.handle, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	addr2, _ := startListener(t, l2)
	c2 := rawConn(t, addr2)
	c2.Write(frame(remote.TypeHeartbeat, 1, ""))
	readReplies(t, c2, 1)
}

func TestListenerRunClosesOnCancel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	l := &remote.Listener{Handle: s.handle, Allow: loopback}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, ln) }()
	c := rawConn(t, ln.Addr().String())
	c.Write(frame(remote.TypeHeartbeat, 1, ""))
	readReplies(t, c, 1)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if !closedByPeer(c, time.Second) {
		t.Error("open connection survived Run")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts")
	}
}

func TestListenerFromSender(t *testing.T) {
	var s sink
	addr, _ := startListener(t, &remote.Listener{Handle: s.handle})
	q := newFakeQueue(t)
	want := records(500, "loop")
	q.push(0, want...)
	runSender(t, &remote.Sender{Addr: addr, Queue: q})
	waitFor(t, "all committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 500 })
	if got := s.get(); !slices.Equal(got, want) {
		t.Errorf("listener got %d lines, want %d in order", len(got), len(want))
	}
}

func TestListenerRunReportsClosedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var s sink
	l := &remote.Listener{Handle: s.handle}
	done := make(chan error)
	go func() { done <- l.Run(context.Background(), ln) }()
	time.Sleep(20 * time.Millisecond)
	ln.Close() // not through ctx: a failure
	var oe *remote.OpError
	if err := <-done; !errors.As(err, &oe) || oe.Op != "accept" {
		t.Errorf("Run returned %v, want an accept OpError", err)
	}
	if err := (&remote.Listener{}).Run(context.Background(), ln); err == nil {
		t.Error("Run without Handle: no error")
	}
}
