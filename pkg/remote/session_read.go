package remote

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// readLoop matches replies to the window and commits what was written,
// until the connection fails or the receiver cannot write.
func (ss *session) readLoop(ctx context.Context) {
	d := NewDecoder(ss.conn, DefaultListenMaxPayload)
	lw := newLowat(ss.conn)
	var fs []Frame
	for {
		fs = fs[:0]
		var err error
		// Take every reply that arrived together.
		for err == nil && (len(fs) == 0 || d.Buffered() >= HeaderSize) {
			if len(fs) == 0 && d.Buffered() < HeaderSize {
				lw.set(ss.repliesDue()*HeaderSize - d.Buffered())
			}
			var f Frame
			if f, err = d.Decode(); err == nil {
				f.Payload = bytes.Clone(f.Payload)
				fs = append(fs, f)
			}
		}
		if out := ss.onReplies(fs); out != nil {
			ss.fail(*out)
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				ss.fail(outcome{err: &OpError{Op: "read", Addr: ss.s.Addr, Err: err}})
			}
			return
		}
	}
}

// repliesDue is how many frames wait for their reply.
func (ss *session) repliesDue() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	// A quarter of the window is what the writer waits for: no need to
	// wake for fewer.
	return min(ss.fl.waiting, max(ss.cfg.window/4, 1))
}

// onReplies applies a batch of replies, commits, and wakes the writer
// when the window has room worth a write.
func (ss *session) onReplies(fs []Frame) *outcome {
	if len(fs) == 0 {
		return nil
	}
	ss.mu.Lock()
	var out *outcome
	for _, f := range fs {
		if out = ss.onReply(f); out != nil {
			break
		}
	}
	ss.settle()
	_, room := ss.room()
	ss.mu.Unlock()
	if room && out == nil {
		select {
		case ss.roomc <- struct{}{}:
		default:
		}
	}
	return out
}

// onReply applies one reply. Call with mu held.
func (ss *session) onReply(f Frame) *outcome {
	ss.waitingSince = time.Now()
	switch {
	case !f.Type.IsReply():
		err := fmt.Errorf("receiver sent a %s frame, not a reply", f.Type)
		return &outcome{err: &OpError{Op: "reply", Addr: ss.s.Addr, Err: err}}
	case f.Type == TypeAck:
	case f.Type&WarnMask != 0 && f.Type&FatalMask == 0:
		if ss.diskLowLog.allow(time.Now()) {
			ss.cfg.log.Warn("receiver warns", "addr", ss.s.Addr, "reply", f.Type, "text", string(f.Payload))
		}
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
	ss.s.mu.Lock()
	ss.s.st.DiskLow = f.Type == TypeDiskLow
	ss.s.mu.Unlock()
	return nil
}
