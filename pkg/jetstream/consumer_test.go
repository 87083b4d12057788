package jetstream

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

// publishAll publishes lines on subject as u, through a Publisher, and
// waits until the queue is empty.
func publishAll(t testing.TB, c *natstest.Cluster, u natstest.User, host, subject, stream string, lines [][]byte) *Publisher {
	t.Helper()
	q := openQueue(t)
	p := &Publisher{Conn: Conn{URL: c.URL(), Credentials: u.SeedFile, InboxPrefix: "_INBOX_" + host},
		Subject: subject, Stream: stream, Queue: q, AckTimeout: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Run(ctx) }()
	defer func() { cancel(); wg.Wait() }()
	for _, l := range lines {
		q.Push(l)
	}
	deadline := time.Now().Add(30 * time.Second)
	for q.Stats().Committed < q.Stats().Pushed {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not all published: %+v", subject, p.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

func openLog(t testing.TB, path string) *hostlog.Writer {
	t.Helper()
	w, err := hostlog.Open(hostlog.Options{Path: path, Flush: hostlog.FlushNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// consume runs a consumer as u until cond holds or the time is up, and
// returns its status.
func consume(t testing.TB, c *natstest.Cluster, u natstest.User, inbox, durable, filter string, log LineWriter, wait time.Duration, cond func(ConsumerStatus) bool) ConsumerStatus {
	t.Helper()
	cs := &Consumer{Conn: Conn{URL: c.URL(), Credentials: u.SeedFile, InboxPrefix: inbox},
		Stream: natstest.TenantStream, Durable: durable, Filter: filter, Log: log}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := cs.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	deadline := time.Now().Add(wait)
	for !cond(cs.Status()) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	return cs.Status()
}

func ausearchCount(t testing.TB, log string, args ...string) int {
	t.Helper()
	if _, err := exec.LookPath("ausearch"); err != nil {
		t.Skip("ausearch is not installed (Debian package auditd)")
	}
	cmd := exec.Command("ausearch", append([]string{"-if", log, "--raw"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// ausearch --raw exits 1, saying nothing, when nothing matches.
	if err != nil && (len(out) > 0 || stderr.Len() > 0 && !strings.Contains(stderr.String(), "<no matches>")) {
		t.Fatalf("ausearch %v: %v: %s", args, err, stderr.String())
	}
	return bytes.Count(out, []byte("\n"))
}

// TestConsumerAusearch: two hosts publish a tenant's copies; the tenant's
// consumer writes one log from both, and the real ausearch finds every
// record of each host, by node.
func TestConsumerAusearch(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	c.AddStreams(u.Admin, 1)
	const n = 2000
	for _, h := range []struct {
		name string
		cred natstest.User
	}{{"host-a", u.HostA}, {"host-b", u.HostB}} {
		lines, _ := records(h.name, n)
		subj, _ := TenantSubject("t1", h.name)
		publishAll(t, c, h.cred, h.name, subj, natstest.TenantStream, lines)
	}
	path := filepath.Join(t.TempDir(), "t1", "audit.log")
	// Stopped after its first batch, the consumer knows its lag.
	st := consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 60*time.Second,
		func(s ConsumerStatus) bool { return s.Acked > 0 })
	first := st.Acked
	if first == 0 || first >= 2*n || st.Pending != 2*n-first || st.Written != first || st.Redelivered != 0 {
		t.Fatalf("after the first batch: %+v, want pending %d", st, 2*n-first)
	}
	st = consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 60*time.Second,
		func(s ConsumerStatus) bool { return s.Acked >= 2*n-first })
	if st.Acked != 2*n-first || st.Written != st.Acked || st.Pending != 0 || st.Redelivered != 0 {
		t.Fatalf("consumer acked %d records, want %d: %+v", st.Acked, 2*n-first, st)
	}
	for _, host := range []string{"host-a", "host-b"} {
		if got := ausearchCount(t, path, "--node", host); got != n {
			t.Errorf("ausearch --node %s: %d records, want %d", host, got, n)
		}
	}
	if got := ausearchCount(t, path, "-m", "PATH"); got == 0 {
		t.Error("ausearch -m PATH found nothing")
	}
	// A restarted consumer resumes from its durable: nothing is written twice.
	st = consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 3*time.Second,
		func(ConsumerStatus) bool { return false })
	if st.Acked != 0 || st.Written != 0 {
		t.Errorf("the restarted consumer wrote %d records again", st.Written)
	}
}

// TestTenantCannotReadAnother: tenant t2's credentials read nothing of
// t1's subjects: not by subscribing, not through t1's durable consumer,
// not through a consumer of its own with t1's filter. t1 reads its own.
func TestTenantCannotReadAnother(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	c.AddStreams(u.Admin, 1)
	lines, _ := records("host-a", 50)
	subj, _ := TenantSubject("t1", "host-a")
	publishAll(t, c, u.HostA, "host-a", subj, natstest.TenantStream, lines)

	// A core subscription is refused.
	errs := make(chan error, 10)
	nc := c.Connect(u.T2, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	got := make(chan *nats.Msg, 100)
	if _, err := nc.ChanSubscribe("audit.tenant.t1.>", got); err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Errorf("subscribing to t1's subjects as t2: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("subscribing to t1's subjects as t2: no permissions violation")
	}

	dir := t.TempDir()
	for _, try := range []struct{ inbox, durable, filter string }{
		{"_INBOX_t2", "t1", "audit.tenant.t1.>"},  // t1's durable
		{"_INBOX_t2", "t2", "audit.tenant.t1.>"},  // its own durable, t1's filter
		{"_INBOX_t2", "t2", "audit.tenant.*.>"},   // every tenant
		{"_INBOX_t1", "t1", "audit.tenant.t1.>"},  // t1's inboxes
		{"_INBOX_t2", "t2x", "audit.tenant.t2.>"}, // another durable
	} {
		path := filepath.Join(dir, try.durable+strconv.Itoa(len(try.filter))+try.inbox, "audit.log")
		st := consume(t, c, u.T2, try.inbox, try.durable, try.filter, openLog(t, path), 3*time.Second,
			func(s ConsumerStatus) bool { return s.Acked > 0 })
		if st.Acked != 0 || st.Written != 0 {
			t.Errorf("t2 as %+v read %d of t1's records", try, st.Written)
		}
		if st.LastError == "" {
			t.Errorf("t2 as %+v: no error in the status", try)
		}
		if b, _ := os.ReadFile(path); len(b) != 0 {
			t.Errorf("t2 as %+v wrote %q", try, b)
		}
	}
	select {
	case m := <-got:
		t.Errorf("t2 received %q on %s", m.Data, m.Subject)
	default:
	}

	path := filepath.Join(dir, "t1", "audit.log")
	st := consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 30*time.Second,
		func(s ConsumerStatus) bool { return s.Acked >= 50 })
	if st.Acked != 50 {
		t.Errorf("t1 read %d of its 50 records: %+v", st.Acked, st)
	}
}

// TestHostCannotPublishAsAnother: host-a's credentials cannot put records
// on host-b's subjects; the refusal shows in the publisher's status and
// the stream holds nothing for host-b.
func TestHostCannotPublishAsAnother(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	js := c.AddStreams(u.Admin, 1)
	q := openQueue(t)
	p := &Publisher{Conn: Conn{URL: c.URL(), Credentials: u.HostA.SeedFile, InboxPrefix: "_INBOX_host-a"},
		Subject: "audit.host.host-b", Stream: natstest.HostStream, Queue: q, AckTimeout: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }()
	lines, _ := records("host-a", 10)
	for _, l := range lines {
		q.Push(l)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(strings.ToLower(p.Status().LastError), "permissions violation") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	st := p.Status()
	if !strings.Contains(strings.ToLower(st.LastError), "permissions violation") {
		t.Errorf("last error %q, want a permissions violation", st.LastError)
	}
	if st.Acked != 0 || q.Stats().Committed != 0 {
		t.Errorf("acked %d, committed %d: records left the queue without the stream", st.Acked, q.Stats().Committed)
	}
	s, err := js.Stream(context.Background(), natstest.HostStream)
	if err != nil {
		t.Fatal(err)
	}
	if msgs := s.CachedInfo().State.Msgs; msgs != 0 {
		t.Errorf("the host stream holds %d messages", msgs)
	}
}

// TestConsumerHostileMessage: what a host publishes is written as one
// line per message, named by the subject's host: a forged node=, a
// newline that would start a forged record, a NUL and an over-long line
// do not get through.
func TestConsumerHostileMessage(t *testing.T) {
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 1, u)
	c.AddStreams(u.Admin, 1)
	long := "type=USER msg=audit(1764800000.001:9): pid=1 uid=0 auid=0 ses=1 msg='" + strings.Repeat("x", 3*MaxLine) + "'"
	// An ENRICHED line as auditd writes it: its one separator, before
	// interpretations that quote names, is kept.
	enriched := "type=SYSCALL msg=audit(1764800000.001:10): arch=c000003e syscall=63 success=yes exit=0 a0=7ffc a1=0 a2=0 a3=0 items=0 ppid=1 pid=2 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"uname\" exe=\"/usr/bin/uname\" key=(null)\x1dARCH=x86_64 SYSCALL=uname AUID=\"root\" UID=\"root\""
	lines := [][]byte{
		[]byte("node=host-b type=USER msg=audit(1764800000.001:5): pid=1 uid=0 auid=0 ses=1 msg='forged node'"),
		[]byte("type=USER msg=audit(1764800000.001:6): pid=1 uid=0 auid=0 ses=1 msg='a'\nnode=host-b type=USER msg=audit(1764800000.001:7): pid=1 uid=0 auid=0 ses=1 msg='forged line'"),
		[]byte("type=USER msg=audit(1764800000.001:8): pid=1 uid=0 auid=0 ses=1 msg='nul\x00here\rcr\x1dsep'"),
		[]byte(long),
		[]byte(enriched),
	}
	subj, _ := TenantSubject("t1", "host-a")
	publishAll(t, c, u.HostA, "host-a", subj, natstest.TenantStream, lines)
	path := filepath.Join(t.TempDir(), "audit.log")
	st := consume(t, c, u.T1, "_INBOX_t1", "t1", "audit.tenant.t1.>", openLog(t, path), 30*time.Second,
		func(s ConsumerStatus) bool { return s.Acked >= uint64(len(lines)) })
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(got) != len(lines) {
		t.Fatalf("%d lines in the log for %d messages:\n%s", len(got), len(lines), b)
	}
	if want := "node=host-a " + enriched; len(got) > 4 && got[4] != want {
		t.Errorf("the ENRICHED line is %q, want %q", got[4], want)
	}
	for i, l := range got {
		if !strings.HasPrefix(l, "node=host-a type=") {
			t.Errorf("line %d: %.80q, want node=host-a first", i, l)
		}
		if i != 4 && strings.ContainsAny(l, "\x00\r\x1d") {
			t.Errorf("line %d: %.200q", i, l)
		}
		if len(l) > MaxLine+len("node=host-a ") {
			t.Errorf("line %d is %d bytes long", i, len(l))
		}
	}
	if !strings.HasSuffix(got[3], " truncated="+strconv.Itoa(len(long))) {
		t.Errorf("the long line ends %q", got[3][len(got[3])-40:])
	}
	if got := ausearchCount(t, path, "--node", "host-a"); got != len(lines) {
		t.Errorf("ausearch --node host-a: %d records, want %d", got, len(lines))
	}
	if got := ausearchCount(t, path, "--node", "host-b"); got != 0 {
		t.Errorf("ausearch --node host-b: %d records, want none: host-a forged them", got)
	}
	if st.Replaced != 2 || st.Truncated != 1 {
		t.Errorf("replaced %d, truncated %d; want 2, 1", st.Replaced, st.Truncated)
	}
}
