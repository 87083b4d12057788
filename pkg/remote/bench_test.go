package remote_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

var benchLine = []byte(`type=SYSCALL msg=audit(1700000000.123:4242): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c a1=55d0d a2=55d0e a3=0 items=2 ppid=1000 pid=1001 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="ls" exe="/usr/bin/ls" key=(null)`)

func BenchmarkEncode(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(remote.HeaderSize + len(benchLine)))
	buf := make([]byte, 0, 1024)
	for i := 0; b.Loop(); i++ {
		buf, _ = remote.AppendFrame(buf[:0], remote.Frame{Type: remote.TypeMessage, Seq: uint32(i), Payload: benchLine})
	}
}

func BenchmarkDecode(b *testing.B) {
	b.ReportAllocs()
	var stream []byte
	for i := range 1000 {
		stream, _ = remote.AppendFrame(stream, remote.Frame{Type: remote.TypeMessage, Seq: uint32(i), Payload: benchLine})
	}
	b.SetBytes(int64(len(stream) / 1000))
	r := bytes.NewReader(stream)
	d := remote.NewDecoder(r, 0)
	for b.Loop() {
		if _, err := d.Decode(); err == io.EOF {
			r.Reset(stream)
			d = remote.NewDecoder(r, 0)
		} else if err != nil {
			b.Fatal(err)
		}
	}
}

// pushN queues n copies of line.
func (q *fakeQueue) pushN(n int, line []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for range n {
		q.items = append(q.items, queue.Item{Seq: uint64(len(q.items) + 1), Data: line})
	}
	close(q.notify)
	q.notify = make(chan struct{})
}

// ackingPeer is the fastest receiver possible: it acknowledges every
// frame, flushing its replies whenever it would block.
func ackingPeer(b *testing.B) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		d := remote.NewDecoder(c, 0)
		w := bufio.NewWriterSize(c, 64<<10)
		var hdr []byte
		for {
			if d.Buffered() == 0 {
				w.Flush()
			}
			f, err := d.Decode()
			if err != nil {
				return
			}
			hdr, _ = remote.AppendFrame(hdr[:0], remote.Frame{Type: remote.TypeAck, Seq: f.Seq})
			w.Write(hdr)
		}
	}()
	return ln.Addr().String()
}

// benchSender sends b.N records to addr and reports records per second.
func benchSender(b *testing.B, addr string, window int) {
	q := newFakeQueue(b)
	q.pushN(b.N, benchLine)
	s := &remote.Sender{Addr: addr, Queue: q, Window: window}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for {
		if c, _ := q.state(); c == uint64(b.N) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	// CPU time is steadier than throughput on a shared machine.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/record")
	cancel()
	<-done
	if st := s.Status(); st.Acked != uint64(b.N) {
		b.Fatalf("status %+v", st)
	}
}

func BenchmarkSenderFakePeer(b *testing.B) {
	benchSender(b, ackingPeer(b), 0)
}

func BenchmarkIntegrationSenderAuditd(b *testing.B) {
	for _, w := range []int{16, 64, 256, 1024, 4096} {
		b.Run(fmt.Sprintf("window=%d", w), func(b *testing.B) {
			a := newTenantAuditd(b)
			benchSender(b, a.Addr(), w)
		})
	}
}

// BenchmarkIntegrationAudispRemoteAuditd is the yardstick for the sender:
// the real audisp-remote feeding the same kind of tenant auditd with the
// same records.
func BenchmarkIntegrationAudispRemoteAuditd(b *testing.B) {
	a := newTenantAuditd(b)
	var in bytes.Buffer
	for i := range b.N {
		fmt.Fprintf(&in, "type=USER_ACCT msg=audit(1700000000.%03d:%d): %s\n", i%1000, i+1, benchLine[len("type=SYSCALL msg=audit(1700000000.123:4242): "):])
	}
	cmd := audispRemote(b, a.Port, in.Bytes())
	b.ReportAllocs()
	b.ResetTimer()
	out, err := runWithTimeout(cmd, 10*time.Minute)
	b.StopTimer()
	if err != nil {
		b.Fatalf("audisp-remote: %v\n%s", err, out)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	a.Stop()
	logData, _ := os.ReadFile(a.Log)
	if n := strings.Count(string(logData), "type=USER_ACCT"); n != b.N {
		b.Fatalf("auditd logged %d of %d records (%s)", n, b.N, filepath.Base(a.Log))
	}
}

func BenchmarkListenerIntake(b *testing.B) {
	var n int
	l := &remote.Listener{Handle: func(line []byte) error { n += len(line); return nil }}
	addr, _ := startListener(b, l)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// Pre-encode a chunk of frames; sequence numbers repeat per chunk.
	const chunk = 512
	var frames []byte
	for i := range chunk {
		frames, _ = remote.AppendFrame(frames, remote.Frame{Type: remote.TypeMessage, Seq: uint32(i), Payload: benchLine})
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(frames) / chunk))
	b.ResetTimer()
	acks := make(chan error, 1)
	go func() {
		d := remote.NewDecoder(c, 0)
		for range b.N {
			f, err := d.Decode()
			if err == nil && f.Type != remote.TypeAck {
				err = fmt.Errorf("reply %s", f.Type)
			}
			if err != nil {
				acks <- err
				return
			}
		}
		acks <- nil
	}()
	for sent := 0; sent < b.N; sent += chunk {
		k := min(chunk, b.N-sent)
		if _, err := c.Write(frames[:k*(len(frames)/chunk)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-acks; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// cpuTime returns the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
