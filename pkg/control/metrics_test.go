package control_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/control"
	"github.com/auditd-ns/auditd-ns/pkg/control/controltest"
)

// latencyBackend adds delivery latency to the in-memory Backend.
type latencyBackend struct {
	*controltest.Backend
	lat []control.Latency
}

func (b *latencyBackend) DeliveryLatency(context.Context) ([]control.Latency, error) {
	return b.lat, nil
}

func serveMetrics(t *testing.T, b control.Backend) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.ServeMetricsOn(ctx, ln, b, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeMetricsOn: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/metrics"
}

var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{[^}]*\})? (\S+)$`)

// scrape fetches url, checks the exposition format, and returns each
// sample as "name{labels}" → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != control.MetricsContentType {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	out := map[string]float64{}
	types := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 4 && f[1] == "TYPE" {
			if _, dup := types[f[2]]; dup {
				t.Errorf("family %s declared twice", f[2])
			}
			types[f[2]] = f[3]
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("not a sample line: %q", line)
		}
		fam := m[1]
		if types[fam] == "" {
			fam = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(fam, "_bucket"), "_sum"), "_count")
			if types[fam] != "histogram" {
				t.Errorf("sample %q has no TYPE line before it", line)
			}
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			t.Errorf("%q: %v", line, err)
		}
		out[m[1]+m[2]] = v
	}
	return out
}

func TestMetrics(t *testing.T) {
	b := &latencyBackend{Backend: newBackend(t), lat: []control.Latency{{
		Name: "other", Count: 10, Sum: 0.5,
		Buckets: []control.Bucket{{UpperBound: 0.1, Count: 9}, {UpperBound: 0.01, Count: 4}},
	}}}
	b.SetKernel(control.KernelStatus{Enabled: 1, Lost: 3, Backlog: 7, BacklogLimit: 8192, Attribution: control.AttributionContid})
	b.SetHostLog(control.HostLogStatus{Path: "/var/log/audit/audit.log", Records: 100, Bytes: 20000, Rotations: 1})
	url := serveMetrics(t, b)

	b.SetFigures("other", control.ContainerInfo{Connected: true, Queued: 5, QueuedBytes: 900, Delivered: 40, Acked: 40})
	before := scrape(t, url)
	// Routing goes on: the figures move between scrapes.
	b.SetFigures("other", control.ContainerInfo{Connected: true, Queued: 1, QueuedBytes: 200, Delivered: 70, Acked: 69,
		Dropped: 3, Drops: map[string]uint64{"full": 2}})
	b.SetHostLog(control.HostLogStatus{Records: 160, Bytes: 32000, Rotations: 1})
	after := scrape(t, url)

	for _, tc := range []struct {
		series        string
		before, after float64
	}{
		{`auditd_ns_hostlog_records_total`, 100, 160},
		{`auditd_ns_hostlog_bytes_total`, 20000, 32000},
		{`auditd_ns_kernel_lost_records_total`, 3, 3},
		{`auditd_ns_kernel_backlog_records`, 7, 7},
		{`auditd_ns_kernel_attribution{mode="contid"}`, 1, 1},
		{`auditd_ns_containers`, 4, 4},
		{`auditd_ns_container_queued_bytes{container="other"}`, 900, 200},
		{`auditd_ns_container_delivered_copies_total{container="other"}`, 40, 70},
		{`auditd_ns_container_acked_copies_total{container="other"}`, 40, 69},
		{`auditd_ns_container_dropped_copies_total{container="other",reason="full"}`, -1, 2},
		{`auditd_ns_container_dropped_copies_total{container="other",reason="other"}`, 0, 1},
		{`auditd_ns_container_dropped_copies_total{container="tenant",reason="other"}`, 0, 0},
		{`auditd_ns_container_connected{container="tenant"}`, 0, 0},
		{`auditd_ns_container_delivery_latency_seconds_bucket{container="other",le="0.01"}`, 4, 4},
		{`auditd_ns_container_delivery_latency_seconds_bucket{container="other",le="+Inf"}`, 10, 10},
		{`auditd_ns_container_delivery_latency_seconds_count{container="other"}`, 10, 10},
	} {
		for _, when := range []struct {
			got  map[string]float64
			want float64
			name string
		}{{before, tc.before, "before"}, {after, tc.after, "after"}} {
			v, ok := when.got[tc.series]
			if when.want < 0 {
				if ok {
					t.Errorf("%s: %s = %v, want absent", when.name, tc.series, v)
				}
				continue
			}
			if !ok || v != when.want {
				t.Errorf("%s: %s = %v (present %v), want %v", when.name, tc.series, v, ok, when.want)
			}
		}
	}
}

func TestMetricsOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := control.ServeMetrics(ctx, "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("ServeMetrics with no address did not return at once")
	}
}

func TestMetricsLabelEscaping(t *testing.T) {
	// Container names cannot hold quotes, but the attribution label comes
	// from the daemon: it must still be escaped.
	b := newBackend(t)
	b.SetKernel(control.KernelStatus{Attribution: "a\"b\\c\nd"})
	got := scrape(t, serveMetrics(t, b))
	if _, ok := got[`auditd_ns_kernel_attribution{mode="a\"b\\c\nd"}`]; !ok {
		t.Errorf("escaped label missing from %v", got)
	}
}
