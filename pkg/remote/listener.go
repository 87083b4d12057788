package remote

import (
	"context"
	"crypto/tls"
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
	DefaultIdleTimeout  = 10 * time.Minute
)

// Listener accepts the remote-logging protocol. Set the fields, then call
// Run; Status may be called at any time. The fields must not change after
// Run starts.
type Listener struct {
	// Handle receives each record line, without its newline; newline,
	// carriage return and NUL bytes inside it are replaced by '?', and so
	// is every 0x1d but the one that starts an ENRICHED tail. It must
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
	// Allow lists the peer networks accepted. Empty refuses every peer:
	// to accept any address, list 0.0.0.0/0 and ::/0. Peers are known
	// only by their address; without TLS nothing authenticates them.
	Allow []netip.Prefix
	// FrameTimeout bounds how long a frame may take to arrive, counted
	// from its first byte: the deadline does not move as bytes trickle
	// in, so a peer that stops halfway or dribbles is disconnected. It
	// also bounds the TLS handshake and each write of replies. Zero means
	// DefaultFrameTimeout.
	FrameTimeout time.Duration
	// IdleTimeout disconnects a peer that sends nothing between frames
	// for this long (audisp-remote sends no heartbeats by default and
	// reconnects when it next has a record). Zero means
	// DefaultIdleTimeout; a negative value means never.
	IdleTimeout time.Duration
	// TLS, when set, makes every connection TLS: the handshake must end
	// within FrameTimeout, and whatever ClientAuth it sets is enforced
	// (a listener that authenticates peers sets
	// tls.RequireAndVerifyClientCert and ClientCAs). Nil means plain TCP.
	TLS *tls.Config

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
	// unexpected or incomplete frame (one not whole within FrameTimeout).
	BadFrames uint64
	// Idle counts connections closed after IdleTimeout without a frame.
	Idle uint64
	// BadHandshakes counts TLS connections closed because the handshake
	// failed: no or an untrusted client certificate, or too slow.
	BadHandshakes uint64
	// HandleErrors counts lines that Handle failed to write.
	HandleErrors uint64
}

type listenerCounters struct {
	accepted, rejected, records, heartbeats, badFrames, handleErrors atomic.Uint64
	idle, badHandshakes                                              atomic.Uint64
}

// Status returns a snapshot of the listener's counters.
func (l *Listener) Status() ListenerStatus {
	l.mu.Lock()
	n := len(l.conns)
	l.mu.Unlock()
	return ListenerStatus{
		Conns:         n,
		Accepted:      l.ctr.accepted.Load(),
		Rejected:      l.ctr.rejected.Load(),
		Records:       l.ctr.records.Load(),
		Heartbeats:    l.ctr.heartbeats.Load(),
		BadFrames:     l.ctr.badFrames.Load(),
		HandleErrors:  l.ctr.handleErrors.Load(),
		Idle:          l.ctr.idle.Load(),
		BadHandshakes: l.ctr.badHandshakes.Load(),
	}
}

func (l *Listener) frameTimeout() time.Duration {
	return orDefault(l.FrameTimeout, DefaultFrameTimeout)
}

// idleTimeout is the idle limit; zero means none.
func (l *Listener) idleTimeout() time.Duration {
	if l.IdleTimeout < 0 {
		return 0
	}
	return orDefault(l.IdleTimeout, DefaultIdleTimeout)
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
	if !l.allowed(c.RemoteAddr()) {
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

// handshake runs the TLS server handshake on c within the frame timeout.
func (l *Listener) handshake(c net.Conn) (net.Conn, error) {
	tc := tls.Server(c, l.TLS)
	tc.SetDeadline(time.Now().Add(l.frameTimeout()))
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	tc.SetDeadline(time.Time{})
	return tc, nil
}

func (l *Listener) refuseTLS(c net.Conn, err error) {
	l.ctr.badHandshakes.Add(1)
	l.mu.Lock()
	ok := l.rejectLg.allow(time.Now())
	l.mu.Unlock()
	if ok {
		l.log().Warn("refused connection: TLS handshake failed", "peer", c.RemoteAddr(), "error", err)
	}
}
