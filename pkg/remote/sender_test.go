package remote_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

func TestSenderDeliversSanitised(t *testing.T) {
	p := startPeer(t, ackAll)
	q := newFakeQueue(t)
	var dials atomic.Int32
	s := &remote.Sender{
		Addr: p.addr(), Queue: q, Window: 16, MaxPayload: 200,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	long := "type=EXECVE msg=audit(1700000001.000:9): " + strings.Repeat("x", 300)
	q.push(0, records(100, "first")...)
	q.push(0,
		"type=EOE msg=audit(1700000001.000:5): ",
		"type=USER msg=audit(1700000001.000:6): a\ntype=LOGIN msg=audit(1700000001.000:7): forged\x00",
		long)
	q.push(5, "type=USER msg=audit(1700000001.500:8): after loss")
	runSender(t, s)

	waitFor(t, "every item committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 104 })
	lines, _, _ := p.snapshot()
	want := append(records(100, "first"),
		"type=USER msg=audit(1700000001.000:6): a?type=LOGIN msg=audit(1700000001.000:7): forged?",
		long[:200-len(" truncated=341")]+" truncated=341",
		"type=DAEMON_ERR msg=audit(1700000001.500:0): op=queue-lost lost=5",
		"type=USER msg=audit(1700000001.500:8): after loss",
	)
	if !slices.Equal(lines, want) {
		t.Fatalf("receiver got %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
	st := s.Status()
	if !st.Connected || st.Acked != 103 || st.Skipped != 1 || st.Truncated != 1 || st.Replaced != 1 || st.LostNotices != 1 || st.InFlight != 0 {
		t.Errorf("status %+v", st)
	}
	if dials.Load() != 1 {
		t.Errorf("custom Dial called %d times, want 1", dials.Load())
	}
}

func TestSenderWindowAndCommitAfterAck(t *testing.T) {
	release := make(chan struct{})
	p := startPeer(t, func(_ int, f remote.Frame) action {
		<-release // hold every reply until the test has looked
		return action{reply: remote.TypeAck}
	})
	q := newFakeQueue(t)
	q.push(0, records(100, "w")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 8}
	runSender(t, s)

	waitFor(t, "a full window", 5*time.Second, func() bool { return s.Status().InFlight == 8 })
	time.Sleep(50 * time.Millisecond)
	if st := s.Status(); st.InFlight != 8 {
		t.Errorf("in flight %d, want the window of 8", st.InFlight)
	}
	if c, _ := q.state(); c != 0 {
		t.Errorf("committed %d before any ack", c)
	}
	close(release)
	waitFor(t, "all committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 100 })
}

func TestSenderOutOfOrderAcks(t *testing.T) {
	// The receiver answers each group of four frames in reverse order.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		d := remote.NewDecoder(c, 0)
		var group []uint32
		for {
			f, err := d.Decode()
			if err != nil {
				return
			}
			group = append(group, f.Seq)
			if len(group) < 4 {
				continue
			}
			for i := len(group) - 1; i >= 0; i-- {
				b, _ := remote.AppendFrame(nil, remote.Frame{Type: remote.TypeAck, Seq: group[i]})
				c.Write(b)
			}
			group = group[:0]
		}
	}()
	q := newFakeQueue(t)
	q.push(0, records(40, "ooo")...)
	s := &remote.Sender{Addr: ln.Addr().String(), Queue: q, Window: 4}
	runSender(t, s)
	waitFor(t, "all committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 40 })
}

func TestSenderReconnectResends(t *testing.T) {
	// Every connection dies after 30 frames, unanswered.
	var count atomic.Int32
	p := startPeer(t, func(_ int, f remote.Frame) action {
		if count.Add(1)%30 == 0 {
			return action{close: true}
		}
		return action{reply: remote.TypeAck}
	})
	q := newFakeQueue(t)
	want := records(200, "rc")
	q.push(0, want...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 10, MinBackoff: time.Millisecond}
	runSender(t, s)

	waitFor(t, "all committed", 10*time.Second, func() bool { c, _ := q.state(); return c == 200 })
	lines, _, conns := p.snapshot()
	got := map[string]bool{}
	for _, l := range lines {
		got[l] = true
	}
	for _, w := range want {
		if !got[w] {
			t.Fatalf("record never acked: %s", w)
		}
	}
	st := s.Status()
	_, rewinds := q.state()
	if conns < 2 || st.Connects < 2 || rewinds < 2 || st.Retried == 0 || st.LastError == "" {
		t.Errorf("conns %d rewinds %d status %+v: want reconnects, rewinds and retries", conns, rewinds, st)
	}
}

func TestSenderPausesOnDiskFull(t *testing.T) {
	var full atomic.Bool
	full.Store(true)
	p := startPeer(t, func(_ int, f remote.Frame) action {
		if full.Load() {
			return action{reply: remote.TypeDiskFull, text: "disk full"}
		}
		return action{reply: remote.TypeAck}
	})
	q := newFakeQueue(t)
	q.push(0, records(20, "df")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 4, Pause: 300 * time.Millisecond}
	runSender(t, s)

	waitFor(t, "a pause", 5*time.Second, func() bool { return s.Status().Paused })
	st := s.Status()
	if !strings.Contains(st.LastError, "disk-full") || st.Connected {
		t.Errorf("while paused: %+v", st)
	}
	_, _, conns := p.snapshot()
	time.Sleep(100 * time.Millisecond)
	if _, _, c := p.snapshot(); c != conns {
		t.Errorf("reconnected during the pause")
	}
	if c, _ := q.state(); c != 0 {
		t.Errorf("committed %d records the receiver could not write", c)
	}
	full.Store(false)
	waitFor(t, "all committed after the pause", 5*time.Second, func() bool { c, _ := q.state(); return c == 20 })
}

func TestSenderPausesOnEnding(t *testing.T) {
	var ending atomic.Bool
	ending.Store(true)
	p := startPeer(t, func(_ int, f remote.Frame) action {
		if ending.Swap(false) {
			return action{reply: remote.TypeEnding}
		}
		return action{reply: remote.TypeAck}
	})
	q := newFakeQueue(t)
	q.push(0, records(5, "end")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 1, Pause: 50 * time.Millisecond}
	runSender(t, s)
	waitFor(t, "all committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 5 })
	if st := s.Status(); !strings.Contains(st.LastError, "ending") || st.Retried != 1 {
		t.Errorf("status %+v, want the ending reply recorded and one record retried", st)
	}
}

func TestSenderDiskLowIsWritten(t *testing.T) {
	p := startPeer(t, func(_ int, f remote.Frame) action { return action{reply: remote.TypeDiskLow, text: "low"} })
	q := newFakeQueue(t)
	q.push(0, records(3, "low")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q}
	runSender(t, s)
	waitFor(t, "all committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 3 })
	if st := s.Status(); !st.DiskLow || st.Connects != 1 {
		t.Errorf("status %+v, want disk low on one connection", st)
	}
}

func TestSenderHeartbeat(t *testing.T) {
	p := startPeer(t, ackAll)
	s := &remote.Sender{Addr: p.addr(), Queue: newFakeQueue(t), Heartbeat: 30 * time.Millisecond}
	runSender(t, s)
	waitFor(t, "heartbeats", 5*time.Second, func() bool {
		_, frames, _ := p.snapshot()
		return len(frames) >= 3
	})
	_, frames, conns := p.snapshot()
	for _, f := range frames {
		if f.Type != remote.TypeHeartbeat || len(f.Payload) != 0 {
			t.Errorf("idle sender sent %s with %d bytes", f.Type, len(f.Payload))
		}
	}
	if st := s.Status(); conns != 1 || st.Acked != 0 || st.Heartbeats == 0 {
		t.Errorf("conns %d status %+v", conns, s.Status())
	}
}

func TestSenderAckTimeout(t *testing.T) {
	p := startPeer(t, func(int, remote.Frame) action { return action{drop: true} })
	q := newFakeQueue(t)
	q.push(0, records(3, "to")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, AckTimeout: 100 * time.Millisecond, MinBackoff: time.Millisecond}
	runSender(t, s)
	waitFor(t, "a reconnect", 5*time.Second, func() bool { return s.Status().Connects >= 2 })
	if st := s.Status(); !strings.Contains(st.LastError, "no reply") {
		t.Errorf("last error %q", st.LastError)
	}
}

func TestSenderRejectsUnknownSequence(t *testing.T) {
	// A receiver that answers a sequence number it was never sent.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		d := remote.NewDecoder(c, 0)
		if _, err := d.Decode(); err != nil {
			return
		}
		b, _ := remote.AppendFrame(nil, remote.Frame{Type: remote.TypeAck, Seq: 999})
		c.Write(b)
		d.Decode() // until the sender hangs up
	}()
	q := newFakeQueue(t)
	q.push(0, records(1, "seq")...)
	s := &remote.Sender{Addr: ln.Addr().String(), Queue: q, MinBackoff: time.Hour}
	runSender(t, s)
	waitFor(t, "the error", 5*time.Second, func() bool { return strings.Contains(s.Status().LastError, "not waiting for a reply") })
	if c, _ := q.state(); c != 0 {
		t.Errorf("committed %d on a bogus ack", c)
	}
}

func TestSenderRunStopsWhileBackingOff(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens: every dial fails
	s := &remote.Sender{Addr: addr, Queue: newFakeQueue(t), MinBackoff: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, "a dial error", 5*time.Second, func() bool { return strings.Contains(s.Status().LastError, "dial") })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestSenderConfigErrors(t *testing.T) {
	q := newFakeQueue(t)
	for _, s := range []*remote.Sender{
		{Queue: q},
		{Addr: "x:1"},
		{Addr: "x:1", Queue: q, MaxPayload: 70000},
		{Addr: "x:1", Queue: q, Window: -1},
	} {
		if err := s.Run(context.Background()); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}
