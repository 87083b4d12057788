package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/internal/natstest"
	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// runDaemon starts the auditd-ns binary with the config text cfg in dir.
func runDaemon(t *testing.T, dir, cfg string) *exec.Cmd {
	t.Helper()
	path := filepath.Join(dir, "auditd-ns.yaml")
	must(t, os.WriteFile(path, []byte(cfg), 0o600))
	d := exec.Command(binary, "run", "--config", path)
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	must(t, err)
	d.Stderr = stderr
	watchRaces(t, stderr.Name())
	must(t, d.Start())
	t.Cleanup(func() { d.Process.Kill(); d.Wait() })
	return d
}

// TestIntegrationJetStreamTwoHosts: two auditd-ns daemons in listener mode
// stand for two hosts; each exports its host log to a 3-node JetStream
// cluster (R3 stream), and one node is shut down mid-stream. A third
// auditd-ns, in consume mode with the security team's credentials, writes
// both hosts' records to one log: ausearch finds each host's records by
// node, every one exactly once. No kernel audit state is touched.
func TestIntegrationJetStreamTwoHosts(t *testing.T) {
	needTools(t)
	u := natstest.NewUsers(t)
	c := natstest.Start(t, 3, u)
	c.AddStreams(u.Admin, 3)

	const n = 5000
	hosts := []struct {
		name string
		cred natstest.User
	}{{"host-a", u.HostA}, {"host-b", u.HostB}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var senders sync.WaitGroup
	var queues []*queue.Queue
	var logs []string
	var daemons []*exec.Cmd
	var metrics []string
	for _, h := range hosts {
		dir := t.TempDir()
		p := port(t)
		metrics = append(metrics, fmt.Sprintf("127.0.0.1:%d", port(t)))
		daemons = append(daemons, runDaemon(t, dir, fmt.Sprintf(`local_events: no
listen: {address: 127.0.0.1:%d}
log_file: %s/log/audit.log
state_dir: %s/state
control_socket: %s/control.sock
metrics_address: %s
export_jetstream:
  url: %s
  subject: audit.host.%s
  stream: %s
  credentials: %s
`, p, dir, dir, dir, metrics[len(metrics)-1], c.URL(), h.name, natstest.HostStream, h.cred.SeedFile)))
		waitAccepting(t, fmt.Sprintf("127.0.0.1:%d", p))
		q, err := queue.Open("", queue.Limits{Memory: 64 << 20}, nil)
		must(t, err)
		t.Cleanup(func() { q.Close() })
		queues = append(queues, q)
		logs = append(logs, filepath.Join(dir, "log", "audit.log"))
		s := &remote.Sender{Addr: fmt.Sprintf("127.0.0.1:%d", p), Queue: q}
		senders.Add(1)
		go func() { defer senders.Done(); s.Run(ctx) }()
	}
	push := func(from, to int) {
		for i := from; i < to; i++ {
			for k, h := range hosts {
				queues[k].Push(fmt.Appendf(nil, `type=SYSCALL msg=audit(1764800000.%03d:%d): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=%d auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="x" exe="/x" key="%s-r%d"`, i%1000, 100+i, 1000+i, h.name, i))
			}
		}
	}
	push(0, n/3)
	time.Sleep(300 * time.Millisecond)
	c.Servers[0].Shutdown()
	t.Logf("shut down %s", c.Servers[0].Name())
	push(n/3, n)

	cdir := t.TempDir()
	clog := filepath.Join(cdir, "log", "audit.log")
	cmetrics := fmt.Sprintf("127.0.0.1:%d", port(t))
	runDaemon(t, cdir, fmt.Sprintf(`local_events: no
log_file: %s
state_dir: %s/state
control_socket: %s/control.sock
metrics_address: %s
consume_jetstream:
  url: %s
  stream: %s
  durable: security
  subject: audit.host.>
  credentials: %s
`, clog, cdir, cdir, cmetrics, strings.Join(c.URLs()[1:], ","), natstest.HostStream, u.Admin.SeedFile))
	defer func() {
		if t.Failed() {
			for _, d := range append(logs, clog) {
				se, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(d)), "stderr"))
				t.Logf("%s: %.3000s", d, se)
			}
		}
	}()
	for k, h := range hosts {
		var got int
		waitFor(t, 90*time.Second, func() bool {
			got = ausearchCount(t, clog, "--node", h.name)
			return got >= n
		}, fmt.Sprintf("%d records of %s in the consumer's log (%d so far)", n, h.name, got))
		if hl := ausearchCount(t, logs[k], "-k", h.name+"-r0"); hl != 1 {
			t.Errorf("%s's own log: %d records of its first, want 1", h.name, hl)
		}
	}
	time.Sleep(time.Second) // anything written twice would be by now
	b, err := os.ReadFile(clog)
	must(t, err)
	seen := map[string]int{}
	for _, m := range keyField.FindAllSubmatch(b, -1) {
		seen[string(m[1])]++
	}
	for _, h := range hosts {
		for i := 0; i < n; i++ {
			if k := fmt.Sprintf("%s-r%d", h.name, i); seen[k] != 1 {
				t.Errorf("%s: %d times in the consumer's log, want once", k, seen[k])
				break
			}
		}
	}
	if len(seen) != 2*n {
		t.Errorf("%d distinct records in the consumer's log, want %d", len(seen), 2*n)
	}
	// ctl status of each host's daemon shows its export.
	for k, h := range hosts {
		cl, err := control.Dial(context.Background(), filepath.Join(filepath.Dir(filepath.Dir(logs[k])), "control.sock"))
		must(t, err)
		st, err := cl.Status(context.Background())
		cl.Close()
		must(t, err)
		e := st.Export
		switch {
		case e == nil:
			t.Errorf("%s: no export in the status", h.name)
		case e.Subject != "audit.host."+h.name || e.Acked+e.Duplicates < n || e.Queued != 0 || e.Dropped != 0:
			t.Errorf("%s: export status %+v", h.name, *e)
		default:
			t.Logf("%s: export %+v", h.name, *e)
		}
	}
	// The export's and the consumer's figures are in the daemons' real
	// /metrics.
	for k, h := range hosts {
		m := scrapeMetrics(t, metrics[k])
		l := `{subject="audit.host.` + h.name + `"}`
		for name, ok := range map[string]func(float64) bool{
			"auditd_ns_export_connected":                func(v float64) bool { return v == 1 },
			"auditd_ns_export_acked_records_total":      func(v float64) bool { return v >= 1 },
			"auditd_ns_export_published_messages_total": func(v float64) bool { return v >= n },
			"auditd_ns_export_queued_records":           func(v float64) bool { return v == 0 },
			"auditd_ns_export_dropped_records_total":    func(v float64) bool { return v == 0 },
			"auditd_ns_export_in_flight_messages":       func(v float64) bool { return v == 0 },
			"auditd_ns_export_connects_total":           func(v float64) bool { return v >= 1 },
			"auditd_ns_export_retried_messages_total":   func(v float64) bool { return v >= 0 },
			"auditd_ns_export_duplicate_records_total":  func(v float64) bool { return v >= 0 },
		} {
			if v, found := metricValue(m, name+l); !found || !ok(v) {
				t.Errorf("%s: %s%s = %v (found %v)", h.name, name, l, v, found)
			}
		}
		acked, _ := metricValue(m, "auditd_ns_export_acked_records_total"+l)
		dups, _ := metricValue(m, "auditd_ns_export_duplicate_records_total"+l)
		if acked+dups < n {
			t.Errorf("%s: acked %v + duplicates %v < %d", h.name, acked, dups, n)
		}
	}
	cm := scrapeMetrics(t, cmetrics)
	for name, ok := range map[string]func(float64) bool{
		"auditd_ns_consume_connected":                  func(v float64) bool { return v == 1 },
		"auditd_ns_consume_written_lines_total":        func(v float64) bool { return v >= 2*n },
		"auditd_ns_consume_acked_messages_total":       func(v float64) bool { return v >= 2*n },
		"auditd_ns_consume_pending_messages":           func(v float64) bool { return v == 0 },
		"auditd_ns_consume_redelivered_messages_total": func(v float64) bool { return v == 0 },
		"auditd_ns_consume_refused_messages_total":     func(v float64) bool { return v == 0 },
	} {
		if v, found := metricValue(cm, name+`{durable="security"}`); !found || !ok(v) {
			t.Errorf("consumer: %s = %v (found %v)", name, v, found)
		}
	}

	// The daemon's own records are exported too: each host's
	// DAEMON_START once, and DAEMON_END once it stops.
	for _, h := range hosts {
		if got := ausearchCount(t, clog, "--node", h.name, "-m", "DAEMON_START"); got != 1 {
			t.Errorf("%s: %d DAEMON_START in the consumer's log, want 1", h.name, got)
		}
	}
	cancel()
	senders.Wait()
	must(t, daemons[0].Process.Signal(syscall.SIGTERM))
	must(t, daemons[0].Wait())
	waitFor(t, 30*time.Second, func() bool {
		return ausearchCount(t, clog, "--node", hosts[0].name, "-m", "DAEMON_END") == 1
	}, hosts[0].name+"'s DAEMON_END in the consumer's log")
}

var keyField = regexp.MustCompile(`key="(host-[ab]-r\d+)"`)

func scrapeMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scraping %s: %s\n%s", addr, resp.Status, b)
	}
	return string(b)
}

// metricValue finds the sample "series VALUE" in a scrape's text.
func metricValue(text, series string) (float64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
