package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
)

// TestReceiverBoundInStatusAndMetrics: when a remote tenant's daemon is
// the bottleneck (it takes the connection and does not keep up: here it
// never reads, so no ack comes back), the status says so for that
// container (receiver_bound, and the time waited) and the metrics give
// auditd_ns_container_receiver_bound 1 for it and 0 for a healthy file
// target beside it.
func TestReceiverBoundInStatusAndMetrics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	conns := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-conns:
				c.Close()
			default:
				return
			}
		}
	})
	d, dir := testDaemon(t,
		fmt.Sprintf("name: slow\nid: 5\ndeliver: {remote: %q}\n# state in %%[1]s\n", ln.Addr().String()),
		"name: fine\nid: 6\ndeliver: {file: %[1]s/fine/audit.log}\n")
	for _, name := range []string{"slow", "fine"} {
		q := d.conts.Get(name).Queue()
		for i := range 4000 {
			q.Push(fmt.Appendf(nil, "type=SYSCALL msg=audit(1700000000.%03d:%d): arch=c000003e syscall=63 success=yes exit=0 pid=%d comm=\"x\"", i%1000, i+1, i+100))
		}
	}
	// The status reads the host log's figures too.
	hl, err := hostlog.Open(hostlog.Options{Path: filepath.Join(dir, "audit.log")})
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	d.hlog = hl
	b := backend{d}
	info := func(name string) control.ContainerInfo {
		t.Helper()
		cs, err := b.Containers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no container %q in the status", name)
		return control.ContainerInfo{}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !info("slow").ReceiverBound || info("fine").Queued > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: slow %+v, fine %+v", info("slow"), info("fine"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if s := info("slow"); !s.Connected || s.ReceiverWaitSeconds <= 0 || s.Queued == 0 {
		t.Errorf("slow: connected %v, receiver wait %.3fs, queued %d: want connected, waiting, copies queued", s.Connected, s.ReceiverWaitSeconds, s.Queued)
	}
	if f := info("fine"); f.ReceiverBound {
		t.Errorf("fine, a file target with nothing queued, is receiver bound")
	}
	body := scrapeMetrics(t, b)
	for _, want := range []string{
		`auditd_ns_container_receiver_bound{container="slow"} 1`,
		`auditd_ns_container_receiver_bound{container="fine"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the metrics lack %q:\n%.600s", want, body)
		}
	}
	if !strings.Contains(string(body), `auditd_ns_container_receiver_wait_seconds_total{container="slow"}`) {
		t.Errorf("the metrics lack the receiver wait of slow")
	}
}

// scrapeMetrics returns what the metrics endpoint serves for b.
func scrapeMetrics(t *testing.T, b control.Backend) []byte {
	t.Helper()
	srv := httptest.NewServer(control.MetricsHandler(b, nil))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return body
}
