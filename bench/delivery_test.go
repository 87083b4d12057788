package bench

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/testaudit"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// corpusPath is the recorded corpus the delivery comparison sends.
const corpusPath = "../test/corpus/kernel-records.log.gz"

// senderWindow is the Sender's records in flight: its default.
const senderWindow = remote.DefaultWindow

var deliverySides = []string{"audisp-remote", "sender"}

// corpusLines is how many lines the corpus had (for the report).
var corpusLines int

// deliveryRun is one run of one sender into a fresh tenant auditd.
type deliveryRun struct {
	Side    string
	Round   int
	Records int
	Seconds float64
	CPU     float64 // the sender's CPU seconds
	RecvCPU float64 // the tenant auditd's CPU seconds, start to stop
	Logged  int64   // records in the tenant's log afterwards
	Err     string
}

func deliveryComparison(t *testing.T) []deliveryRun {
	lines := loadCorpus(t)
	var runs []deliveryRun
	for round := range *rounds {
		for i := range deliverySides {
			side := deliverySides[(i+round)%len(deliverySides)]
			n := *records
			if side == "audisp-remote" {
				n = *audispN
			}
			runs = append(runs, runDelivery(t, side, round+1, lines, n))
		}
	}
	return runs
}

// loadCorpus reads the corpus, leaving out the daemon's own records
// (DAEMON_START and the like), which a tenant auditd would also write.
func loadCorpus(t *testing.T) [][]byte {
	f, err := os.Open(corpusPath)
	if err != nil {
		t.Fatalf("reading the corpus (make it with test/corpus/capture.sh): %v", err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	must(t, err)
	sc := bufio.NewScanner(z)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var lines [][]byte
	for sc.Scan() {
		l := sc.Bytes()
		if len(l) == 0 || bytes.HasPrefix(l, []byte("type=DAEMON_")) {
			continue
		}
		lines = append(lines, bytes.Clone(l))
	}
	must(t, sc.Err())
	if len(lines) == 0 {
		t.Fatalf("%s holds no records", corpusPath)
	}
	corpusLines = len(lines)
	return lines
}

func runDelivery(t *testing.T, side string, round int, lines [][]byte, n int) deliveryRun {
	run := deliveryRun{Side: side, Round: round, Records: n}
	a := startTenant(t)
	var err error
	if side == "sender" {
		run.Seconds, run.CPU, err = sendWithSender(a, lines, n)
	} else {
		run.Seconds, run.CPU, err = sendWithAudispRemote(t, a, lines, n)
	}
	a.stop()
	if ps := a.cmd.ProcessState; ps != nil {
		run.RecvCPU = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	run.Logged = a.logged()
	if err == nil && run.Logged != int64(n) {
		err = fmt.Errorf("the tenant auditd logged %d of %d records", run.Logged, n)
	}
	if err != nil {
		run.Err = err.Error()
	}
	t.Logf("%s round %d: %d records in %.2fs (%.0f/s), CPU %.2fs, auditd CPU %.2fs, logged %d %s", side, round, n, run.Seconds, float64(n)/run.Seconds, run.CPU, run.RecvCPU, run.Logged, run.Err)
	return run
}

// repeated writes n lines taken from lines in turn, each with a newline.
func repeated(w io.Writer, lines [][]byte, n int) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	for i := range n {
		bw.Write(lines[i%len(lines)])
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// sendWithAudispRemote runs audisp-remote with its configuration
// bind-mounted over /etc/audit/audisp-remote.conf in a private mount
// namespace (3.0.9 reads no other path) and the records on stdin.
func sendWithAudispRemote(t *testing.T, a *tenant, lines [][]byte, n int) (secs, cpu float64, err error) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "audisp-remote.conf")
	must(t, os.WriteFile(conf, []byte(testaudit.AudispRemoteConf(a.port, filepath.Join(dir, "queue"), 2000000)), 0o600))
	if !fileExists("/etc/audit/audisp-remote.conf") {
		t.Skip("no /etc/audit/audisp-remote.conf to mount over (Debian package audispd-plugins)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	lookPath(t, "unshare")
	cmd := testaudit.AudispRemote(ctx, lookPath(t, "audisp-remote"), conf)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	in, err := cmd.StdinPipe()
	must(t, err)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	werr := make(chan error, 1)
	go func() { werr <- repeated(in, lines, n); in.Close() }()
	err = cmd.Wait()
	secs = time.Since(start).Seconds()
	if e := <-werr; err == nil && e != nil {
		err = fmt.Errorf("feeding audisp-remote: %w", e)
	}
	if err != nil {
		err = fmt.Errorf("audisp-remote: %w: %s", err, stderr.String())
	}
	if ps := cmd.ProcessState; ps != nil {
		cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	return secs, cpu, err
}

// sendWithSender sends the records with pkg/remote's Sender from a real
// pkg/queue (memory only, filled before the clock starts) and waits until
// every one is acknowledged, at most 15 minutes. CPU is this process's:
// the Sender and the queue's read side.
func sendWithSender(a *tenant, lines [][]byte, n int) (secs, cpu float64, err error) {
	q, err := filledQueue(lines, n)
	if err != nil {
		return 0, 0, err
	}
	defer q.Close()
	s := &remote.Sender{Addr: a.addr(), Queue: q, Window: senderWindow}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	runtime.GC() // the filling's garbage is not the sender's
	cpu0 := selfCPU()
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	select {
	case <-q.all:
	case <-time.After(15 * time.Minute):
	}
	secs = time.Since(start).Seconds()
	cpu = selfCPU() - cpu0
	cancel()
	<-done
	if c := q.committed.Load(); c < uint64(n) {
		return secs, cpu, fmt.Errorf("only %d of %d acknowledged in 15 minutes (%+v)", c, n, s.Status())
	}
	return secs, cpu, nil
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// countedQueue is a pkg/queue Queue that closes all when its last item is
// committed, so that the benchmark waits without polling.
type countedQueue struct {
	*queue.Queue
	n         uint64
	committed atomic.Uint64
	all       chan struct{}
}

// filledQueue is a memory queue holding n records taken from lines in
// turn.
func filledQueue(lines [][]byte, n int) (*countedQueue, error) {
	var size int64
	for i := range n {
		size += int64(len(lines[i%len(lines)])) + 64
	}
	q, err := queue.Open("", queue.Limits{Memory: min(size, 1<<31)}, nil)
	if err != nil {
		return nil, err
	}
	for i := range n {
		q.Push(lines[i%len(lines)])
	}
	if d := q.Stats().Dropped.Total(); d > 0 {
		q.Close()
		return nil, fmt.Errorf("filling the queue: %d of %d records dropped", d, n)
	}
	return &countedQueue{Queue: q, n: uint64(n), all: make(chan struct{})}, nil
}

func (q *countedQueue) Commit(seq uint64) {
	q.Queue.Commit(seq)
	if q.committed.Swap(seq) < q.n && seq >= q.n {
		close(q.all)
	}
}

// tenant is a real auditd with local_events = no listening on loopback,
// in a private mount namespace with a tmpfs on /run. It never talks to
// the kernel's audit state (-s nochange; local_events = no skips
// registration).
type tenant struct {
	cmd    *exec.Cmd
	dir    string
	log    string
	port   int
	stderr bytes.Buffer
}

func startTenant(t *testing.T) *tenant {
	dir := t.TempDir()
	a := &tenant{dir: dir, log: filepath.Join(dir, "log", "audit.log"), port: freePort(t)}
	must(t, os.Mkdir(filepath.Join(dir, "log"), 0o700))
	must(t, os.Mkdir(filepath.Join(dir, "plugins"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "auditd.conf"), []byte(testaudit.TenantAuditdConf(a.log, a.port, filepath.Join(dir, "plugins"))), 0o600))
	script := `mount -t tmpfs tmpfs /run && exec "$0" -n -s nochange -c "$1"`
	a.cmd = exec.Command(lookPath(t, "unshare"), "--mount", "--propagation", "private", "sh", "-c", script, lookPath(t, "auditd"), dir)
	a.cmd.Stdout, a.cmd.Stderr = &a.stderr, &a.stderr
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	must(t, a.cmd.Start())
	t.Cleanup(a.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.addr(), time.Second)
		if err == nil {
			c.Close()
			time.Sleep(100 * time.Millisecond) // tcp_max_per_addr = 1: let auditd see the probe close
			return a
		}
		if time.Now().After(deadline) {
			a.stop()
			t.Fatalf("the tenant auditd never listened on %s: %s", a.addr(), a.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *tenant) addr() string { return fmt.Sprintf("127.0.0.1:%d", a.port) }

// stop ends auditd with SIGTERM, which flushes its log.
func (a *tenant) stop() { testaudit.Terminate(a.cmd, 15*time.Second) }

// logged counts the records in the log other than auditd's own.
func (a *tenant) logged() int64 {
	f, err := os.Open(a.log)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	var n int64
	for sc.Scan() {
		if !bytes.HasPrefix(sc.Bytes(), []byte("type=DAEMON_")) {
			n++
		}
	}
	return n
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
