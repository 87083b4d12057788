package remote

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// session is one connection of a Sender.
type session struct {
	s    *Sender
	cfg  senderConfig
	conn net.Conn
	bw   *bufio.Writer
	fl   inflight
	seq  uint32 // last sequence number used

	hdr, payload []byte // scratch
	lastSend     time.Time
	waitingSince time.Time // when the oldest unanswered frame started waiting
	acked        uint64
	diskLowLog   rateLimit
}

type batch struct {
	items []queue.Item
	err   error
}

// replies is what the reader decoded in one go: frames, then possibly
// the error that ended the connection.
type replies struct {
	fs  []Frame
	err error
}

func newSession(s *Sender, cfg senderConfig, conn net.Conn) *session {
	return &session{
		s: s, cfg: cfg, conn: conn,
		bw:         bufio.NewWriterSize(conn, 64<<10),
		lastSend:   time.Now(),
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

	replyc := make(chan replies, 4)
	want := make(chan int, 1)
	batches := make(chan batch, 1)
	wg.Go(func() { ss.readReplies(sctx, replyc) })
	wg.Go(func() { ss.feed(sctx, want, batches) })

	tick := time.NewTicker(ss.tickEvery())
	defer tick.Stop()
	feederIdle := true
	for {
		// Ask for more only when a quarter of the window is free (or the
		// window is empty): fewer, larger writes.
		room := ss.cfg.window - ss.fl.len()
		if feederIdle && room > 0 && (room >= ss.cfg.window/4 || ss.fl.len() == 0) {
			want <- room
			feederIdle = false
		}
		var out *outcome
		select {
		case <-sctx.Done():
			return outcome{acked: ss.acked}
		case b := <-batches:
			feederIdle = true
			out = ss.onBatch(ctx, b)
		case r := <-replyc:
			out = ss.onReplies(r, replyc)
		case now := <-tick.C:
			out = ss.onTick(now)
		}
		if out != nil {
			out.acked = ss.acked
			return *out
		}
	}
}

func (ss *session) tickEvery() time.Duration {
	d := ss.cfg.ackTimeout
	if ss.cfg.heartbeat > 0 {
		d = min(d, ss.cfg.heartbeat)
	}
	return max(d/4, 10*time.Millisecond)
}

// feed reads the queue on demand: n items at most each time it is asked.
func (ss *session) feed(ctx context.Context, want <-chan int, out chan<- batch) {
	for {
		var n int
		select {
		case n = <-want:
		case <-ctx.Done():
			return
		}
		items, err := ss.s.Queue.Read(ctx, n)
		select {
		case out <- batch{items, err}:
		case <-ctx.Done():
			return
		}
		if err != nil {
			return
		}
	}
}

// readReplies decodes replies until the connection fails. Replies that
// arrived together are passed on together.
func (ss *session) readReplies(ctx context.Context, out chan<- replies) {
	d := NewDecoder(ss.conn, DefaultListenMaxPayload)
	for {
		var r replies
		for r.err == nil && (len(r.fs) == 0 || d.Buffered() >= HeaderSize) {
			f, err := d.Decode()
			switch {
			case err != nil:
				r.err = err
			case !f.Type.IsReply():
				r.err = fmt.Errorf("receiver sent a %s frame, not a reply", f.Type)
			default:
				f.Payload = bytes.Clone(f.Payload)
				r.fs = append(r.fs, f)
			}
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
		if r.err != nil {
			return
		}
	}
}

func (ss *session) onBatch(ctx context.Context, b batch) *outcome {
	if b.err != nil {
		if ctx.Err() != nil {
			return &outcome{}
		}
		return &outcome{err: fmt.Errorf("reading queue: %w", b.err)}
	}
	now := time.Now()
	for _, it := range b.items {
		ss.encodeItem(it, now)
	}
	return ss.flush(now)
}

// encodeItem buffers the frames of one queue item.
func (ss *session) encodeItem(it queue.Item, now time.Time) {
	if it.Lost > 0 {
		ss.payload = LostNotice(ss.payload[:0], it.Lost, it.Data, now)
		ss.writeFrame(TypeMessage, ss.payload, entry{notice: true})
	}
	var v verdict
	ss.payload, v = sanitize(ss.payload[:0], it.Data, ss.cfg.maxPayload)
	e := entry{item: it.Seq, last: true, v: v}
	if v&skip != 0 {
		ss.seq++
		e.seq, e.acked = ss.seq, true
		ss.fl.push(e)
		return
	}
	ss.writeFrame(TypeMessage, ss.payload, e)
}

func (ss *session) writeFrame(t Type, payload []byte, e entry) {
	ss.seq++
	e.seq = ss.seq
	if ss.fl.len() == 0 {
		ss.waitingSince = time.Now()
	}
	ss.fl.push(e)
	ss.hdr = appendHeader(ss.hdr[:0], t, len(payload), ss.seq)
	ss.bw.Write(ss.hdr) // errors surface in Flush
	ss.bw.Write(payload)
}

// flush sends the buffered frames and commits skipped items at the head.
func (ss *session) flush(now time.Time) *outcome {
	ss.conn.SetWriteDeadline(now.Add(ss.cfg.ackTimeout))
	if err := ss.bw.Flush(); err != nil {
		return &outcome{err: &OpError{Op: "write", Addr: ss.s.Addr, Err: err}}
	}
	ss.lastSend = now
	ss.settle()
	return nil
}

// onReplies handles r and every other batch already waiting.
func (ss *session) onReplies(r replies, more <-chan replies) *outcome {
	defer ss.settle()
	for {
		for _, f := range r.fs {
			if out := ss.onReply(f); out != nil {
				return out
			}
		}
		if r.err != nil {
			return &outcome{err: &OpError{Op: "read", Addr: ss.s.Addr, Err: r.err}}
		}
		select {
		case r = <-more:
		default:
			return nil
		}
	}
}

func (ss *session) onReply(f Frame) *outcome {
	ss.waitingSince = time.Now()
	switch {
	case f.Type == TypeAck:
	case f.Type&WarnMask != 0 && f.Type&FatalMask == 0:
		if ss.diskLowLog.allow(time.Now()) {
			ss.cfg.log.Warn("receiver warns", "addr", ss.s.Addr, "reply", f.Type, "text", string(f.Payload))
		}
		ss.s.mu.Lock()
		ss.s.st.DiskLow = f.Type == TypeDiskLow
		ss.s.mu.Unlock()
	case f.Type == TypeEnding || f.Type&FatalMask != 0:
		err := fmt.Errorf("receiver replied %s to frame %d: %q", f.Type, f.Seq, f.Payload)
		return &outcome{err: &OpError{Op: "reply", Addr: ss.s.Addr, Err: err}, pause: true}
	default:
		err := fmt.Errorf("unknown reply %s to frame %d", f.Type, f.Seq)
		return &outcome{err: &OpError{Op: "reply", Addr: ss.s.Addr, Err: err}}
	}
	if !ss.fl.ack(f.Seq) {
		err := fmt.Errorf("%s for frame %d, which is not waiting for a reply", f.Type, f.Seq)
		return &outcome{err: &OpError{Op: "reply", Addr: ss.s.Addr, Err: err}}
	}
	if f.Type == TypeAck {
		ss.s.mu.Lock()
		ss.s.st.DiskLow = false
		ss.s.mu.Unlock()
	}
	return nil
}

// settle moves acked entries out of the window, commits the delivered
// items and publishes the counters.
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
	if ss.fl.len() > 0 && now.Sub(ss.waitingSince) > ss.cfg.ackTimeout {
		err := fmt.Errorf("no reply for %v with %d frames in flight", ss.cfg.ackTimeout, ss.fl.len())
		return &outcome{err: &OpError{Op: "read", Addr: ss.s.Addr, Err: errors.Join(err, errAckTimeout)}}
	}
	hb := ss.cfg.heartbeat
	if hb > 0 && now.Sub(ss.lastSend) >= hb && ss.fl.len() < ss.cfg.window {
		ss.writeFrame(TypeHeartbeat, nil, entry{heartbeat: true})
		return ss.flush(now)
	}
	return nil
}

var errAckTimeout = errors.New("ack timeout")
