package remote

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// Sender defaults.
const (
	DefaultWindow     = 1024
	DefaultHeartbeat  = 30 * time.Second
	DefaultAckTimeout = 30 * time.Second
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultPause      = 10 * time.Second
	defaultDialTimout = 10 * time.Second
)

// Sender drains a queue to one receiver over the remote-logging protocol.
// Set the fields, then call Run once; Status may be called at any time
// from any goroutine. The fields must not change after Run starts.
type Sender struct {
	// Addr is the receiver, host:port.
	Addr string
	// Queue is drained by Run. An item is committed only once the
	// receiver acknowledged it (at-least-once: after a reconnect the
	// uncommitted items are sent again).
	Queue queue.Reader
	// Dial opens the connection. Nil means a net.Dialer with a 10-second
	// timeout. Replace it to dial from inside a network namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection-level events. Nil means no logging.
	Logger hclog.Logger
	// Window is the number of frames in flight. Zero means DefaultWindow.
	// The sender writes, and wakes for replies, a quarter of a window at a
	// time: a larger window costs less CPU per record and resends more
	// after a broken connection.
	Window int
	// MaxPayload is the largest record sent; longer ones are truncated.
	// Zero means DefaultMaxPayload; values below 64 are raised to 64 to
	// leave room for the marker. auditd 3.0.9 handles at most 8954.
	MaxPayload int
	// Heartbeat is how long the connection may stay idle before a
	// heartbeat frame is sent. Zero means DefaultHeartbeat; negative
	// disables heartbeats.
	Heartbeat time.Duration
	// AckTimeout is how long frames may wait for a reply (and a write may
	// block) before the connection is dropped and reopened. Zero means
	// DefaultAckTimeout.
	AckTimeout time.Duration
	// MinBackoff and MaxBackoff bound the exponential wait between
	// failed connections. Zero means DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Pause is the wait after the receiver reported a full disk, a disk
	// error or that it is ending. Zero means DefaultPause.
	Pause time.Duration

	mu        sync.Mutex // guards st and waitSince
	st        SenderStatus
	waitSince time.Time // when the current wait on the receiver began
}

// SenderStatus is a snapshot of a Sender.
type SenderStatus struct {
	Addr      string
	Connected bool
	// Paused is set while waiting after a disk full, disk error or
	// ending reply.
	Paused bool
	// InFlight is the number of frames sent and not yet acknowledged.
	InFlight int
	// Acked counts records acknowledged and committed.
	Acked uint64
	// Retried counts records sent again because their connection ended
	// before they were acknowledged.
	Retried uint64
	// Truncated counts delivered records cut to MaxPayload.
	Truncated uint64
	// Replaced counts delivered records in which newline, carriage return,
	// NUL or 0x1d bytes were replaced by '?'.
	Replaced uint64
	// Skipped counts EOE and empty records, which are never sent.
	Skipped uint64
	// LostNotices counts delivered queue-lost notices.
	LostNotices uint64
	// Heartbeats counts heartbeats the receiver acknowledged.
	Heartbeats uint64
	// Connects counts successful connections.
	Connects uint64
	// DiskLow is set when the last reply said the receiver's disk is low.
	DiskLow bool
	// WaitingOnReceiver is set while the sender has room for less than a
	// quarter of its window and waits for the receiver's acks. With
	// copies queued behind it, the receiver is the bottleneck.
	WaitingOnReceiver bool
	// ReceiverWait is the total time spent waiting so, the current wait
	// included.
	ReceiverWait time.Duration
	// LastError is the last connection, protocol or receiver error.
	LastError     string
	LastErrorTime time.Time
}

// Status returns a snapshot of the sender's state and counters.
func (s *Sender) Status() SenderStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Addr = s.Addr
	if !s.waitSince.IsZero() {
		st.WaitingOnReceiver = true
		st.ReceiverWait += time.Since(s.waitSince)
	}
	return st
}

// senderConfig is a Sender's fields with defaults applied.
type senderConfig struct {
	dial                   func(ctx context.Context, network, addr string) (net.Conn, error)
	log                    hclog.Logger
	window, maxPayload     int
	heartbeat, ackTimeout  time.Duration
	minBackoff, maxBackoff time.Duration
	pause                  time.Duration
}

func (s *Sender) config() (senderConfig, error) {
	c := senderConfig{
		dial: s.Dial, log: s.Logger, window: s.Window, maxPayload: s.MaxPayload,
		heartbeat: s.Heartbeat, ackTimeout: s.AckTimeout,
		minBackoff: s.MinBackoff, maxBackoff: s.MaxBackoff, pause: s.Pause,
	}
	switch {
	case s.Addr == "":
		return c, errors.New("sender: no address")
	case s.Queue == nil:
		return c, errors.New("sender: no queue")
	case c.window < 0:
		return c, fmt.Errorf("sender: window %d is negative", c.window)
	case c.maxPayload < 0 || c.maxPayload > MaxWirePayload:
		return c, fmt.Errorf("sender: max payload %d is outside 0..%d", c.maxPayload, MaxWirePayload)
	}
	if c.dial == nil {
		d := &net.Dialer{Timeout: defaultDialTimout}
		c.dial = d.DialContext
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	c.window = orDefault(c.window, DefaultWindow)
	c.maxPayload = orDefault(c.maxPayload, DefaultMaxPayload)
	c.maxPayload = max(c.maxPayload, 64) // room for the truncation marker
	c.heartbeat = orDefault(c.heartbeat, DefaultHeartbeat)
	c.ackTimeout = orDefault(c.ackTimeout, DefaultAckTimeout)
	c.minBackoff = orDefault(c.minBackoff, DefaultMinBackoff)
	c.maxBackoff = max(orDefault(c.maxBackoff, DefaultMaxBackoff), c.minBackoff)
	c.pause = orDefault(c.pause, DefaultPause)
	return c, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Run sends until ctx ends, then returns nil. It returns an error only for
// an invalid configuration; connection and receiver errors are retried and
// shown by Status.
func (s *Sender) Run(ctx context.Context) error {
	cfg, err := s.config()
	if err != nil {
		return err
	}
	backoff := cfg.minBackoff
	for ctx.Err() == nil {
		out := s.connectOnce(ctx, cfg)
		if ctx.Err() != nil {
			break
		}
		wait := backoff
		switch {
		case out.pause:
			wait = cfg.pause
			backoff = cfg.minBackoff
		case out.acked > 0:
			wait, backoff = cfg.minBackoff, cfg.minBackoff
		default:
			backoff = min(2*backoff, cfg.maxBackoff)
		}
		if out.err != nil {
			s.setErr(out.err)
			cfg.log.Warn("connection to receiver ended", "addr", s.Addr, "error", out.err, "retry_in", wait)
		}
		s.setPaused(out.pause)
		sleep(ctx, jitter(wait))
		s.setPaused(false)
	}
	return nil
}

// outcome is how a connection ended.
type outcome struct {
	err   error
	pause bool   // the receiver cannot write now: wait cfg.pause
	acked uint64 // records acknowledged on this connection
}

func (s *Sender) connectOnce(ctx context.Context, cfg senderConfig) outcome {
	conn, err := cfg.dial(ctx, "tcp", s.Addr)
	if err != nil {
		return outcome{err: &OpError{Op: "dial", Addr: s.Addr, Err: err}}
	}
	defer conn.Close()
	s.Queue.Rewind()
	s.mu.Lock()
	s.st.Connected = true
	s.st.Connects++
	s.mu.Unlock()
	cfg.log.Debug("connected to receiver", "addr", s.Addr, "local", conn.LocalAddr())

	ss := newSession(s, cfg, conn)
	out := ss.run(ctx)

	s.mu.Lock()
	s.st.Connected = false
	s.st.InFlight = 0
	s.st.Retried += ss.fl.unacked()
	s.mu.Unlock()
	return out
}

func (s *Sender) setErr(err error) {
	s.mu.Lock()
	s.st.LastError = err.Error()
	s.st.LastErrorTime = time.Now()
	s.mu.Unlock()
}

// waiting marks the start (since set) or the end (zero) of a wait on the
// receiver's acks.
func (s *Sender) waiting(since time.Time) {
	s.mu.Lock()
	if since.IsZero() && !s.waitSince.IsZero() {
		s.st.ReceiverWait += time.Since(s.waitSince)
	}
	s.waitSince = since
	s.mu.Unlock()
}

func (s *Sender) setPaused(p bool) {
	s.mu.Lock()
	s.st.Paused = p
	s.mu.Unlock()
}

// jitter spreads d over [0.8d, 1.2d) so that many senders do not
// reconnect in step.
func jitter(d time.Duration) time.Duration {
	return d*4/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
