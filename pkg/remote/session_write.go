package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// writeLoop reads the queue whenever the window has room and sends what it
// read.
func (ss *session) writeLoop(ctx context.Context) {
	var pending []entry
	for {
		n, ok := ss.waitRoom(ctx)
		if !ok {
			return
		}
		items, err := ss.s.Queue.Read(ctx, n)
		if err != nil {
			if ctx.Err() == nil {
				ss.fail(outcome{err: fmt.Errorf("reading queue: %w", err)})
			}
			return
		}
		ss.wmu.Lock()
		now := time.Now()
		pending = pending[:0]
		for _, it := range items {
			pending = ss.encodeItem(pending, it, now)
		}
		ss.push(pending)
		out := ss.flush(now)
		ss.wmu.Unlock()
		if out != nil {
			ss.fail(*out)
			return
		}
		ss.mu.Lock()
		ss.settle() // skipped records at the head
		ss.mu.Unlock()
	}
}

// waitRoom blocks until the window has room worth a write. The time it
// waits is the receiver's (SenderStatus.WaitingOnReceiver).
func (ss *session) waitRoom(ctx context.Context) (int, bool) {
	waited := false
	defer func() {
		if waited {
			ss.s.waiting(time.Time{})
		}
	}()
	for {
		ss.mu.Lock()
		n, ok := ss.room()
		ss.mu.Unlock()
		if ok {
			return n, true
		}
		if !waited {
			waited = true
			ss.s.waiting(time.Now())
		}
		select {
		case <-ss.roomc:
		case <-ctx.Done():
			return 0, false
		}
	}
}

// encodeItem buffers the frames of one queue item and appends their
// window entries to pending. Call with wmu held.
func (ss *session) encodeItem(pending []entry, it queue.Item, now time.Time) []entry {
	if it.Lost > 0 {
		ss.payload = LostNotice(ss.payload[:0], it.Lost, it.Data, now)
		pending = ss.writeFrame(pending, TypeMessage, ss.payload, entry{notice: true})
	}
	if it.Unrouted != nil {
		ss.payload = UnroutedNotice(ss.payload[:0], it.Unrouted, it.Data, now)
		pending = ss.writeFrame(pending, TypeMessage, ss.payload, entry{notice: true})
	}
	var v verdict
	ss.payload, v = sanitize(ss.payload[:0], it.Data, ss.cfg.maxPayload)
	e := entry{item: it.Seq, last: true, v: v}
	if v&skip != 0 {
		ss.seq++
		e.seq, e.acked = ss.seq, true
		return append(pending, e)
	}
	return ss.writeFrame(pending, TypeMessage, ss.payload, e)
}

// writeFrame buffers one frame. Nothing reaches the connection before
// flush, so that no reply can come before its frame is in the window.
// Call with wmu held.
func (ss *session) writeFrame(pending []entry, t Type, payload []byte, e entry) []entry {
	ss.seq++
	e.seq = ss.seq
	ss.out = appendHeader(ss.out, t, len(payload), ss.seq)
	ss.out = append(ss.out, payload...)
	return append(pending, e)
}

// push enters frames into the window before they are flushed, so that no
// reply can come first. Call with wmu held.
func (ss *session) push(pending []entry) {
	ss.mu.Lock()
	if ss.fl.len() == 0 {
		ss.waitingSince = time.Now()
	}
	for _, e := range pending {
		ss.fl.push(e)
	}
	ss.mu.Unlock()
}

// flush sends the buffered frames. Call with wmu held.
func (ss *session) flush(now time.Time) *outcome {
	ss.conn.SetWriteDeadline(now.Add(ss.cfg.ackTimeout))
	_, err := ss.conn.Write(ss.out)
	if cap(ss.out) > 4*writeBuffer {
		ss.out = make([]byte, 0, writeBuffer) // give back what a burst of large records took
	}
	ss.out = ss.out[:0]
	if err != nil {
		return &outcome{err: &OpError{Op: "write", Addr: ss.s.Addr, Err: err}}
	}
	ss.lastSend = now
	return nil
}
