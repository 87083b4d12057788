package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Listener defaults.
const (
	DefaultMaxConns     = 64
	DefaultFrameTimeout = 30 * time.Second
)

// Listener accepts the remote-logging protocol. Set the fields, then call
// Run; Status may be called at any time. The fields must not change after
// Run starts.
type Listener struct {
	// Handle receives each record line, without its newline; newline,
	// carriage return and NUL bytes inside it are replaced by '?'. It must
	// return only once the line is durably written: the frame is
	// acknowledged after it returns nil. An error is answered with disk
	// full when it matches syscall.ENOSPC and with disk error otherwise,
	// and the connection stays open. Calls are never concurrent; line is
	// valid only during the call. Required.
	Handle func(line []byte) error
	// Logger receives connection events and rejected peers, rate-limited.
	// Nil means no logging.
	Logger hclog.Logger
	// MaxPayload is the largest payload accepted; a peer that announces a
	// longer one is disconnected. Zero means DefaultListenMaxPayload.
	MaxPayload int
	// MaxConns is the number of connections served at once; further ones
	// are closed at once. Zero means DefaultMaxConns.
	MaxConns int
	// Allow lists the peer networks accepted. Empty accepts every peer.
	Allow []netip.Prefix
	// FrameTimeout bounds how long a frame may take to arrive once it has
	// begun; a peer that stops halfway is disconnected. Zero means
	// DefaultFrameTimeout.
	FrameTimeout time.Duration
	// IdleTimeout disconnects a peer that sends nothing for this long.
	// Zero means never (audisp-remote sends no heartbeats by default).
	IdleTimeout time.Duration

	handleMu sync.Mutex // serialises Handle
	mu       sync.Mutex // guards conns
	conns    map[net.Conn]struct{}
	rejectLg rateLimit // guarded by mu
	badLg    rateLimit // guarded by mu
	ctr      listenerCounters
}

// ListenerStatus is a snapshot of a Listener's counters.
type ListenerStatus struct {
	// Conns is the number of connections open now.
	Conns int
	// Accepted and Rejected count connections admitted and refused
	// (peer not allowed, or too many connections).
	Accepted, Rejected uint64
	// Records counts lines handled and acknowledged; Heartbeats counts
	// heartbeats acknowledged.
	Records, Heartbeats uint64
	// BadFrames counts connections closed for a malformed, oversize,
	// unexpected or incomplete frame.
	BadFrames uint64
	// HandleErrors counts lines that Handle failed to write.
	HandleErrors uint64
}

type listenerCounters struct {
	accepted, rejected, records, heartbeats, badFrames, handleErrors atomic.Uint64
}

// Status returns a snapshot of the listener's counters.
func (l *Listener) Status() ListenerStatus {
	l.mu.Lock()
	n := len(l.conns)
	l.mu.Unlock()
	return ListenerStatus{
		Conns:        n,
		Accepted:     l.ctr.accepted.Load(),
		Rejected:     l.ctr.rejected.Load(),
		Records:      l.ctr.records.Load(),
		Heartbeats:   l.ctr.heartbeats.Load(),
		BadFrames:    l.ctr.badFrames.Load(),
		HandleErrors: l.ctr.handleErrors.Load(),
	}
}

func (l *Listener) log() hclog.Logger {
	if l.Logger == nil {
		return hclog.NewNullLogger()
	}
	return l.Logger
}

// Run serves ln until ctx ends, then closes ln and every connection and
// returns nil once they are done. It returns an error when the
// configuration is invalid or ln fails for good.
func (l *Listener) Run(ctx context.Context, ln net.Listener) error {
	if l.Handle == nil {
		ln.Close()
		return errors.New("listener: no Handle function")
	}
	if l.MaxPayload < 0 || l.MaxPayload > MaxWirePayload {
		ln.Close()
		return fmt.Errorf("listener: max payload %d is outside 0..%d", l.MaxPayload, MaxWirePayload)
	}
	l.mu.Lock()
	l.conns = make(map[net.Conn]struct{})
	l.rejectLg = rateLimit{every: time.Second, burst: 20}
	l.badLg = rateLimit{every: time.Second, burst: 20}
	l.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()

	var wg sync.WaitGroup
	err := l.acceptLoop(ctx, ln, &wg)
	ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	wg.Wait()
	return err
}

func (l *Listener) acceptLoop(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	var failures int
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return &OpError{Op: "accept", Addr: ln.Addr().String(), Err: err}
			}
			// Out of descriptors and the like: wait, then go on.
			failures++
			l.log().Warn("accepting a connection", "error", err)
			sleep(ctx, min(time.Duration(failures)*10*time.Millisecond, time.Second))
			continue
		}
		failures = 0
		if reason := l.admit(c); reason != "" {
			l.reject(c, reason)
			continue
		}
		wg.Go(func() { l.serve(c) })
	}
}

// admit registers c, or says why it is refused.
func (l *Listener) admit(c net.Conn) string {
	if len(l.Allow) > 0 && !l.allowed(c.RemoteAddr()) {
		return "peer address not allowed"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.conns) >= orDefault(l.MaxConns, DefaultMaxConns) {
		return "too many connections"
	}
	l.conns[c] = struct{}{}
	l.ctr.accepted.Add(1)
	return ""
}

func (l *Listener) allowed(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range l.Allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Listener) reject(c net.Conn, reason string) {
	l.ctr.rejected.Add(1)
	l.mu.Lock()
	ok := l.rejectLg.allow(time.Now())
	l.mu.Unlock()
	if ok {
		l.log().Warn("refused connection", "peer", c.RemoteAddr(), "reason", reason)
	}
	c.Close()
}

func (l *Listener) forget(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	c.Close()
}
