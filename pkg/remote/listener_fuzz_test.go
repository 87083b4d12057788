package remote_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// pipeListener is an in-memory net.Listener over net.Pipe.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (p *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-p.conns:
		return c, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

func (p *pipeListener) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}

func (p *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (p *pipeListener) dial() (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case p.conns <- loopConn{server}:
		return client, nil
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// loopConn is a pipe end that says it comes from loopback, so that an
// allow list of loopback admits it.
type loopConn struct{ net.Conn }

func (loopConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// FuzzListener feeds arbitrary bytes to a Listener as one peer: it must
// neither crash nor hand on a line that could split at the receiver.
func FuzzListener(f *testing.F) {
	msg, _ := remote.AppendFrame(nil, remote.Frame{Type: remote.TypeMessage, Seq: 1, Payload: []byte("type=USER msg=audit(1.000:1): a\nb\x00c\r")})
	hb, _ := remote.AppendFrame(nil, remote.Frame{Type: remote.TypeHeartbeat, Seq: 2})
	f.Add(append(msg, hb...))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Add(msg[:20])

	const limit = 512
	var bad []string
	var mu sync.Mutex
	l := &remote.Listener{
		MaxPayload:   limit,
		FrameTimeout: 50 * time.Millisecond,
		Allow:        loopback,
		Handle: func(line []byte) error {
			if len(line) == 0 || len(line) > limit || bytes.ContainsAny(line, "\n\r\x00") || bytes.Count(line, []byte{0x1d}) > 1 {
				mu.Lock()
				bad = append(bad, string(line))
				mu.Unlock()
			}
			return nil
		},
	}
	pl := newPipeListener()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Run(ctx, pl) }()
	f.Cleanup(func() {
		cancel()
		<-done
	})

	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := pl.dial()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, c); close(drained) }()
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write(in) // the listener may hang up early
		c.Close()
		<-drained
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("Handle got a line it must not: %q", bad[0])
		}
	})
}
