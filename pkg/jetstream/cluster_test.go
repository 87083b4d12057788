package jetstream

import (
	"context"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// records makes n record lines of host, in events of one to three records
// (a SYSCALL and its PATH records, as ausearch parses them), each line
// unique through the number rN in it, with an EOE after every event of more
// than one record, as the kernel sends them. It returns the lines to push
// and how many are not EOE.
func records(host string, n int) (lines [][]byte, real int) {
	serial := 1000
	for i := 0; i < n; {
		serial++
		size := 1 + serial%3
		ts := fmt.Sprintf("1764800000.%03d:%d", serial%1000, serial)
		for k := 0; k < size && i < n; k++ {
			if k == 0 {
				lines = append(lines, fmt.Appendf(nil, `type=SYSCALL msg=audit(%s): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=%d ppid=1 pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="x" exe="/bin/x" key="%s-r%d"`, ts, size-1, 100+i, host, i))
			} else {
				lines = append(lines, fmt.Appendf(nil, `type=PATH msg=audit(%s): item=%d name="/%s/r%d" inode=1 dev=fd:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0`, ts, k-1, host, i))
			}
			i++
		}
		if size > 1 {
			lines = append(lines, fmt.Appendf(nil, "type=EOE msg=audit(%s): ", ts))
		}
	}
	return lines, n
}

func openQueue(t testing.TB) *queue.Queue {
	t.Helper()
	q, err := queue.Open(t.TempDir(), queue.Limits{Memory: 256 << 20, Spool: 0}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// streamLines reads every message of stream on subject through an
// ordered consumer, as the admin.
func streamLines(t testing.TB, js jetstream.JetStream, stream, subject string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := storedOn(t, js, stream, subject)
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for uint64(len(out)) < want {
		mb, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range mb.Messages() {
			out = append(out, m.Data())
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages of %s", len(out), want, subject)
		}
	}
	return out
}

var iField = regexp.MustCompile(`[/-]r(\d+)"`)

// exactlyOnce checks that lines hold each of 0..n-1 exactly once.
func exactlyOnce(t testing.TB, what string, lines [][]byte, n int) {
	t.Helper()
	seen := make([]int, n)
	for _, l := range lines {
		m := iField.FindSubmatch(l)
		if m == nil {
			t.Errorf("%s: a message without its number: %q", what, l)
			continue
		}
		var i int
		fmt.Sscan(string(m[1]), &i)
		if i < 0 || i >= n {
			t.Errorf("%s: number %d out of range", what, i)
			continue
		}
		seen[i]++
	}
	missing, dup := 0, 0
	for _, c := range seen {
		switch {
		case c == 0:
			missing++
		case c > 1:
			dup += c - 1
		}
	}
	if missing > 0 || dup > 0 || len(lines) != n {
		t.Errorf("%s: %d messages for %d records: %d missing, %d duplicated", what, len(lines), n, missing, dup)
	}
}

// TestClusterNodeKilledExactlyOnce: two hosts publish their logs and a
// tenant's copies to a 3-node cluster with R3 streams; the node leading
// the host stream is shut down mid-stream. Every record is in the stream
// exactly once.
func TestClusterNodeKilledExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 3, u)
	js := c.AddStreams(u.Admin, 3)

	const n = 30000 / raceScale
	type host struct {
		name       string
		cred       natstest.User
		hq, tq     *queue.Queue
		hp, tp     *Publisher
		hostSubj   string
		tenantSubj string
	}
	hosts := []*host{{name: "host-a", cred: u.HostA}, {name: "host-b", cred: u.HostB}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range hosts {
		h.hostSubj, _ = HostSubject(h.name)
		h.tenantSubj, _ = TenantSubject("t1", h.name)
		h.hq, h.tq = openQueue(t), openQueue(t)
		conn := Conn{URL: c.URL(), Credentials: h.cred.SeedFile, InboxPrefix: "_INBOX_" + h.name, MaxBackoff: time.Second}
		h.hp = &Publisher{Conn: conn, Subject: h.hostSubj, Stream: natstest.HostStream, Queue: h.hq, AckTimeout: 2 * time.Second * raceScale,
			Logger: hclog.New(&hclog.LoggerOptions{Name: h.name, Level: hclog.Warn})}
		h.tp = &Publisher{Conn: conn, Subject: h.tenantSubj, Stream: natstest.TenantStream, Queue: h.tq, AckTimeout: 2 * time.Second * raceScale}
		for _, p := range []*Publisher{h.hp, h.tp} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Run(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
	}
	// The host stream's leader goes away a third of the way in.
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	info, err := js.Stream(sctx, natstest.HostStream)
	scancel()
	if err != nil {
		t.Fatal(err)
	}
	leader := info.CachedInfo().Cluster.Leader
	// The first half of each host's records is pushed before the leader
	// goes, the second half after, so that publishing is under way on
	// both sides of the loss whatever the machine's speed.
	all := make([][][]byte, len(hosts))
	for i, h := range hosts {
		all[i], _ = records(h.name, n)
	}
	// push pushes each host's lines from a fraction of them to another
	// (there are more lines than records: EOE records are not sent).
	push := func(from, to float64) {
		var pushWG sync.WaitGroup
		for i, h := range hosts {
			pushWG.Add(1)
			go func() {
				defer pushWG.Done()
				lines := all[i][int(from*float64(len(all[i]))):int(to*float64(len(all[i])))]
				for j, l := range lines {
					h.hq.Push(l)
					h.tq.Push(l)
					if j%100 == 0 {
						time.Sleep(2 * time.Millisecond) // a steady flow, not one burst
					}
				}
			}()
		}
		pushWG.Wait()
	}
	push(0, 0.5)
	// Wait until every publisher has a quarter acked: the stream is in use.
	for _, h := range hosts {
		for _, p := range []*Publisher{h.hp, h.tp} {
			deadline := time.Now().Add(60 * time.Second)
			for p.Status().Acked < n/4 {
				if time.Now().After(deadline) {
					t.Fatalf("%s: %+v after 60s, before the node's loss", h.name, p.Status())
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	killed := ""
	for _, s := range c.Servers {
		if s.Name() == leader {
			s.Shutdown()
			killed = s.Name()
		}
	}
	if killed == "" {
		t.Fatalf("no server is the stream leader %q", leader)
	}
	t.Logf("shut down %s, the leader of %s", killed, natstest.HostStream)
	push(0.5, 1)

	deadline := time.Now().Add(90 * time.Second)
	for _, h := range hosts {
		for _, q := range []*queue.Queue{h.hq, h.tq} {
			for {
				st := q.Stats()
				if st.Committed == st.Pushed {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d of %d committed; host publisher %+v", h.name, st.Committed, st.Pushed, h.hp.Status())
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	cancel()
	wg.Wait()
	disrupted := false
	for _, h := range hosts {
		for _, p := range []*Publisher{h.hp, h.tp} {
			st := p.Status()
			disrupted = disrupted || st.Retried > 0 || st.Duplicates > 0 || st.Connects > 1
			t.Logf("%s: published %d acked %d duplicates %d retried %d connects %d last error %q",
				st.Subject, st.Published, st.Acked, st.Duplicates, st.Retried, st.Connects, st.LastError)
			// An ack lost with the node makes the record go again, and the
			// stream answers that it is a duplicate.
			if st.Acked > n || st.Acked+st.Duplicates < n {
				t.Errorf("%s: the stream took %d new messages and %d duplicates, for %d records", st.Subject, st.Acked, st.Duplicates, n)
			}
		}
		exactlyOnce(t, h.hostSubj, streamLines(t, js, natstest.HostStream, h.hostSubj), n)
		exactlyOnce(t, h.tenantSubj, streamLines(t, js, natstest.TenantStream, h.tenantSubj), n)
	}
	if !disrupted {
		t.Error("no publisher lost an ack or its connection: the node's loss was not tested")
	}
}

// TestRestartMidEvent: the publisher is stopped after the first two
// records of a three-record event were acknowledged. They are not
// committed (the event might go on), so the restarted publisher, reading
// the spooled queue again, sends the whole event with the same message
// ids, and the stream keeps each record once.
func TestRestartMidEvent(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	dir := t.TempDir()
	lim := queue.Limits{Memory: 1 << 20, Spool: queue.MinSpool}
	lines, _ := records("host-a", 6) // events of 3, 1, 2 records
	run := func(q *queue.Queue, until func(Status) bool) Status {
		p := &Publisher{Conn: Conn{URL: c.URL(), Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a"},
			Subject: "audit.host.host-a", Stream: natstest.HostStream, Queue: q, Window: 2, idle: time.Hour}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); p.Run(ctx) }()
		deadline := time.Now().Add(20 * time.Second)
		for !until(p.Status()) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		<-done
		return p.Status()
	}
	q, err := queue.Open(dir, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines[:3] { // the first event, 3 records
		q.Push(l)
	}
	st := run(q, func(s Status) bool { return s.Acked >= 3 })
	if st.Acked != 3 {
		t.Fatalf("first run: %+v", st)
	}
	if c := q.Stats().Committed; c != 0 {
		t.Errorf("%d records of an event that may go on were committed", c)
	}
	q.Close()

	q, err = queue.Open(dir, lim, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, l := range lines[3:] {
		q.Push(l)
	}
	st = run(q, func(s Status) bool { return s.Acked >= 3 && s.Duplicates >= 3 })
	if st.Duplicates != 3 {
		t.Errorf("second run: %d duplicates, want the 3 records sent again: %+v", st.Duplicates, st)
	}
	exactlyOnce(t, "audit.host.host-a", streamLines(t, js, natstest.HostStream, "audit.host.host-a"), 6)
}

// TestDaemonKernelIDsApart: the daemon's own records are numbered by a
// serial of their own, so a DAEMON_* record and a kernel record may have
// the same audit(SEC.MSEC:SERIAL). Each is stored: their Nats-Msg-Ids
// differ (before, the stream took the second for a duplicate of the first).
func TestDaemonKernelIDsApart(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	lines := [][]byte{
		[]byte(`type=DAEMON_START msg=audit(1764800000.100:7): op=start ver=1 format=raw kernel=6 auid=0 pid=1 uid=0 ses=1 res=success key="host-a-r0"`),
		[]byte(`type=SYSCALL msg=audit(1764800000.200:8): arch=c000003e syscall=59 success=yes key="host-a-r1"`),
		[]byte(`type=SYSCALL msg=audit(1764800000.100:7): arch=c000003e syscall=59 success=yes key="host-a-r2"`),
		[]byte(`type=DAEMON_ROTATE msg=audit(1764800000.300:9): op=rotate key="host-a-r3"`),
		[]byte(`type=SYSCALL msg=audit(1764800000.300:9): arch=c000003e syscall=59 success=yes key="host-a-r4"`),
	}
	p := publishAll(t, c, u.HostA, "host-a", "audit.host.host-a", natstest.HostStream, lines)
	if st := p.Status(); st.Duplicates != 0 {
		t.Errorf("%d records taken for duplicates: %+v", st.Duplicates, st)
	}
	exactlyOnce(t, "audit.host.host-a", streamLines(t, js, natstest.HostStream, "audit.host.host-a"), len(lines))
}
