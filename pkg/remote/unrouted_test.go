package remote_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// TestSenderTellsUnrouted: an item whose queue says records were left
// unrouted before it (the router's overflow) reaches the receiver after
// the queue-lost notice of its own drops, as a second notice giving the
// cause, the count and the first and last record's headers; both count as
// lost notices.
func TestSenderTellsUnrouted(t *testing.T) {
	p := startPeer(t, ackAll)
	q := newFakeQueue(t)
	q.push(0, "type=USER msg=audit(1700000001.000:5): before")
	u := queue.Unrouted{Records: 1024,
		First: queue.Stamp{Sec: 1700000001, Msec: 5, Serial: 6},
		Last:  queue.Stamp{Sec: 1700000001, Msec: 400, Serial: 900}}
	q.mu.Lock()
	q.items = append(q.items, queue.Item{Seq: 2, Data: []byte("type=USER msg=audit(1700000001.500:901): after"), Lost: 3, Unrouted: &u})
	close(q.notify)
	q.notify = make(chan struct{})
	q.mu.Unlock()
	s := &remote.Sender{Addr: p.addr(), Queue: q, Window: 16}
	runSender(t, s)

	waitFor(t, "every item committed", 5*time.Second, func() bool { c, _ := q.state(); return c == 2 })
	lines, _, _ := p.snapshot()
	want := []string{
		"type=USER msg=audit(1700000001.000:5): before",
		"type=DAEMON_ERR msg=audit(1700000001.500:0): op=queue-lost lost=3",
		"type=DAEMON_ERR msg=audit(1700000001.500:0): op=queue-lost cause=router-overflow unrouted=1024 first=1700000001.005:6 last=1700000001.400:900",
		"type=USER msg=audit(1700000001.500:901): after",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("receiver got:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if st := s.Status(); st.LostNotices != 2 || st.Acked != 2 {
		t.Errorf("status %+v, want 2 lost notices, 2 acked", st)
	}
}

// TestUnroutedNoticeUnknownEnds: first and last are left out when the
// records' headers could not be read.
func TestUnroutedNoticeUnknownEnds(t *testing.T) {
	got := string(remote.UnroutedNotice(nil, &queue.Unrouted{Records: 7}, []byte("garbage"), time.Unix(1700000000, 7e6)))
	if want := "type=DAEMON_ERR msg=audit(1700000000.007:0): op=queue-lost cause=router-overflow unrouted=7"; got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}
