package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// session is one connection of a Sender. Three goroutines share it: the
// writer drains the queue into frames, the reader matches replies and
// commits, and run watches the clock (ack timeout, heartbeats). Each
// wakes the others only when it must, so that a record costs few
// goroutine switches.
type session struct {
	s    *Sender
	cfg  senderConfig
	conn net.Conn

	wmu      sync.Mutex // guards the write side: out, seq, payload, lastSend
	out      []byte     // frames to send in the next write
	seq      uint32     // last sequence number used
	payload  []byte     // scratch
	lastSend time.Time

	mu           sync.Mutex // guards the window: fl, waitingSince, acked; taken after wmu
	fl           inflight
	waitingSince time.Time // when the oldest unanswered frame started waiting
	acked        uint64    // records acknowledged on this connection

	roomc      chan struct{} // reader to writer: the window has room again
	failc      chan outcome  // the first failure ends the session
	diskLowLog rateLimit     // reader only
}

// writeBuffer is the write buffer's starting size: a quarter window of
// typical records (about 270 bytes framed). It grows as a batch needs, so
// that one write sends each batch, and only after its frames are in the
// window.
const writeBuffer = 128 << 10

func newSession(s *Sender, cfg senderConfig, conn net.Conn) *session {
	return &session{
		s: s, cfg: cfg, conn: conn,
		out:        make([]byte, 0, writeBuffer),
		lastSend:   time.Now(),
		roomc:      make(chan struct{}, 1),
		failc:      make(chan outcome, 3),
		diskLowLog: rateLimit{every: time.Minute},
	}
}

// run drives the connection until it fails, the receiver asks for a pause,
// or ctx ends. Every goroutine it starts has ended when it returns.
func (ss *session) run(ctx context.Context) outcome {
	sctx, cancel := context.WithCancel(ctx)
	stopClose := context.AfterFunc(sctx, func() { ss.conn.Close() })
	defer stopClose()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	wg.Go(func() { ss.readLoop(sctx) })
	wg.Go(func() { ss.writeLoop(sctx) })

	tick := time.NewTicker(ss.tickEvery())
	defer tick.Stop()
	for {
		select {
		case <-sctx.Done():
			return ss.result(outcome{})
		case out := <-ss.failc:
			return ss.result(out)
		case now := <-tick.C:
			if out := ss.onTick(now); out != nil {
				return ss.result(*out)
			}
		}
	}
}

func (ss *session) result(out outcome) outcome {
	ss.mu.Lock()
	out.acked = ss.acked
	ss.mu.Unlock()
	return out
}

// fail reports the end of the session; only the first report counts.
func (ss *session) fail(out outcome) {
	select {
	case ss.failc <- out:
	default:
	}
}

func (ss *session) tickEvery() time.Duration {
	d := ss.cfg.ackTimeout
	if ss.cfg.heartbeat > 0 {
		d = min(d, ss.cfg.heartbeat)
	}
	return max(d/4, 10*time.Millisecond)
}

// room is how many more frames the window takes now, and whether that is
// worth a write: a quarter of the window, or an empty window. Fewer,
// larger writes. Call with mu held.
func (ss *session) room() (int, bool) {
	n := ss.cfg.window - ss.fl.len()
	return n, n > 0 && (n >= ss.cfg.window/4 || ss.fl.len() == 0)
}

// settle moves acked entries out of the window, commits the delivered
// items and publishes the counters. Call with mu held, so that commits
// stay in order.
func (ss *session) settle() {
	p := ss.fl.pop()
	if p.commit > 0 {
		ss.s.Queue.Commit(p.commit)
	}
	ss.acked += p.records
	st := &ss.s.st
	ss.s.mu.Lock()
	st.InFlight = ss.fl.len()
	st.Acked += p.records
	st.Skipped += p.skipped
	st.Truncated += p.truncated
	st.Replaced += p.replaced
	st.LostNotices += p.notices
	st.Heartbeats += p.heartbeats
	ss.s.mu.Unlock()
}

// onTick drops a connection whose replies are overdue and sends a
// heartbeat when the connection is idle.
func (ss *session) onTick(now time.Time) *outcome {
	ss.mu.Lock()
	n, since := ss.fl.len(), ss.waitingSince
	ss.mu.Unlock()
	if n > 0 && now.Sub(since) > ss.cfg.ackTimeout {
		err := fmt.Errorf("no reply for %v with %d frames in flight", ss.cfg.ackTimeout, n)
		return &outcome{err: &OpError{Op: "read", Addr: ss.s.Addr, Err: errors.Join(err, errAckTimeout)}}
	}
	if ss.cfg.heartbeat <= 0 || n >= ss.cfg.window {
		return nil
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	if now.Sub(ss.lastSend) < ss.cfg.heartbeat {
		return nil
	}
	var pending []entry
	pending = ss.writeFrame(pending, TypeHeartbeat, nil, entry{heartbeat: true})
	ss.push(pending)
	return ss.flush(now)
}

var errAckTimeout = errors.New("ack timeout")
