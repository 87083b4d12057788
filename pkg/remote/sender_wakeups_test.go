package remote_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// countingConn counts the reads of a TCP connection; it keeps the
// connection's SyscallConn, as a real one has.
type countingConn struct {
	*net.TCPConn
	reads *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	c.reads.Add(1)
	return c.TCPConn.Read(p)
}

// auditd writes one 16-byte ack per frame, each as it has written the
// record. The sender must not wake up and read once per ack, which costs
// more CPU than the record: it asks the kernel (SO_RCVLOWAT) to wake it
// once the replies it waits for have come. 2048 records, each acked by a
// write of its own after a pause, must take far fewer reads than acks.
func TestSenderReadsRepliesInBatches(t *testing.T) {
	p := startPeer(t, func(int, remote.Frame) action {
		time.Sleep(20 * time.Microsecond)
		return action{reply: remote.TypeAck}
	})
	var reads atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{c.(*net.TCPConn), &reads}, nil
	}
	const n = 2048
	q := newFakeQueue(t)
	q.push(0, records(n, "batch")...)
	runSender(t, &remote.Sender{Addr: p.addr(), Queue: q, Dial: dial})
	waitFor(t, "every record acked", 30*time.Second, func() bool { c, _ := q.state(); return c == n })
	if got := reads.Load(); got > n/8 {
		t.Errorf("%d reads for %d acks, want at most %d", got, n, n/8)
	}
	t.Logf("%d reads for %d acks", reads.Load(), n)
}

// A receiver slower than the queue shows in the status: the sender waits
// for its acks with its window full (WaitingOnReceiver) and counts the
// time; once everything is acked it no longer waits.
func TestSenderSaysWhenReceiverIsBottleneck(t *testing.T) {
	p := startPeer(t, func(int, remote.Frame) action {
		time.Sleep(time.Millisecond)
		return action{reply: remote.TypeAck}
	})
	const n = 600
	q := newFakeQueue(t)
	q.push(0, records(n, "slow")...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 32}
	runSender(t, s)
	waitFor(t, "the sender waiting on the receiver", 10*time.Second, func() bool { return s.Status().WaitingOnReceiver })
	waitFor(t, "every record acked", 30*time.Second, func() bool { c, _ := q.state(); return c == n })
	waitFor(t, "the wait over", 5*time.Second, func() bool { return !s.Status().WaitingOnReceiver })
	if w := s.Status().ReceiverWait; w < 100*time.Millisecond {
		t.Errorf("ReceiverWait = %v after %d frames acked 1 ms apart, want most of the run", w, n)
	}
}

// A window of large records is more than one write buffer. No frame may
// reach the receiver before it is in the window: an ack that came first
// was taken for a protocol error, and the connection was dropped and the
// window sent again.
func TestSenderLargeWindowOfLargeRecords(t *testing.T) {
	p := startPeer(t, ackAll)
	const n = 6000
	q := newFakeQueue(t)
	line := strings.Repeat("x", 2000)
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("type=USER msg=audit(1.000:%d): %s", i, line)
	}
	q.push(0, lines...)
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 1024}
	runSender(t, s)
	waitFor(t, "every record acked", 30*time.Second, func() bool { c, _ := q.state(); return c == n })
	if st := s.Status(); st.Connects != 1 || st.LastError != "" {
		t.Errorf("%d connections, last error %q; want 1 and none", st.Connects, st.LastError)
	}
}
