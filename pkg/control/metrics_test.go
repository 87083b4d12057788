package control_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/proto"

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

// scrape fetches url, checks that it is the Prometheus text format, and
// returns each sample as "name{label="value",...}" → value, labels in
// name order, histograms as their _bucket, _sum and _count samples.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeTextPlain {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for suffix, v := range sampleValues(m) {
				out[seriesKey(name+suffix, m.GetLabel())] = v
			}
			for _, b := range m.GetHistogram().GetBucket() {
				le := &dto.LabelPair{Name: proto.String("le"), Value: proto.String(formatBound(b.GetUpperBound()))}
				out[seriesKey(name+"_bucket", append(m.GetLabel(), le))] = float64(b.GetCumulativeCount())
			}
		}
	}
	return out
}

// sampleValues are the samples of m other than histogram buckets, by
// their suffix to the family name.
func sampleValues(m *dto.Metric) map[string]float64 {
	switch {
	case m.Counter != nil:
		return map[string]float64{"": m.GetCounter().GetValue()}
	case m.Gauge != nil:
		return map[string]float64{"": m.GetGauge().GetValue()}
	case m.Histogram != nil:
		return map[string]float64{"_sum": m.GetHistogram().GetSampleSum(), "_count": float64(m.GetHistogram().GetSampleCount())}
	}
	return map[string]float64{"": m.GetUntyped().GetValue()}
}

func seriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	ls := make([]string, len(labels))
	for i, l := range labels {
		ls[i] = l.GetName() + "=" + strconv.Quote(l.GetValue())
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

func formatBound(v float64) string {
	if math.IsInf(v, +1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func TestMetrics(t *testing.T) {
	b := &latencyBackend{Backend: newBackend(t), lat: []control.Latency{{
		Name: "other", Count: 10, Sum: 0.5,
		Buckets: []control.Bucket{{UpperBound: 0.1, Count: 9}, {UpperBound: 0.01, Count: 4}},
	}}}
	b.SetKernel(control.KernelStatus{Enabled: 1, Lost: 3, Backlog: 7, BacklogLimit: 8192, Attribution: control.AttributionContid})
	b.SetHostLog(control.HostLogStatus{Path: "/var/log/audit/audit.log", Records: 100, Bytes: 20000, Rotations: 1})
	b.SetRouter(control.RouterStatus{Records: 90, Events: 30, Overflow: 2, Unattributed: 5})
	b.SetTracker(&control.TrackerStatus{Attribution: control.AttributionCgroup, Watching: true, Events: 500, ExecMissed: 4, Hits: 80, Ambiguous: 2, Processes: 310, Idle: true, ProcReads: 40})
	url := serveMetrics(t, b)

	b.SetFigures("other", control.ContainerInfo{Connected: true, Queued: 5, QueuedBytes: 900, Delivered: 40, Acked: 40})
	before := scrape(t, url)
	// Routing goes on: the figures move between scrapes.
	b.SetFigures("other", control.ContainerInfo{Connected: true, Queued: 1, QueuedBytes: 200, Delivered: 70, Acked: 69,
		Dropped: 3, Drops: map[string]uint64{"full": 2}})
	b.SetHostLog(control.HostLogStatus{Records: 160, Bytes: 32000, Rotations: 1})
	b.SetRouter(control.RouterStatus{Records: 150, Events: 50, Overflow: 2, Unattributed: 6, Malformed: 1})
	b.SetTracker(&control.TrackerStatus{Attribution: control.AttributionCgroup, Events: 700, ExecMissed: 9, Hits: 120, Ambiguous: 5, Misses: 1, Processes: 290, ProcReads: 65})
	after := scrape(t, url)

	for _, tc := range []struct {
		series        string
		before, after float64
	}{
		{`auditd_ns_hostlog_records_total`, 100, 160},
		{`auditd_ns_hostlog_bytes_total`, 20000, 32000},
		{`auditd_ns_kernel_lost_records_total`, 3, 3},
		{`auditd_ns_router_records_total`, 90, 150},
		{`auditd_ns_router_events_total`, 30, 50},
		{`auditd_ns_router_overflow_records_total`, 2, 2},
		{`auditd_ns_router_unattributed_events_total`, 5, 6},
		{`auditd_ns_router_malformed_records_total`, 0, 1},
		{`auditd_ns_kernel_backlog_records`, 7, 7},
		{`auditd_ns_tracker_missed_execs_total{attribution="cgroup"}`, 4, 9},
		{`auditd_ns_tracker_ambiguous_lookups_total{attribution="cgroup"}`, 2, 5},
		{`auditd_ns_tracker_hit_lookups_total{attribution="cgroup"}`, 80, 120},
		{`auditd_ns_tracker_missed_lookups_total{attribution="cgroup"}`, 0, 1},
		{`auditd_ns_tracker_process_events_total{attribution="cgroup"}`, 500, 700},
		{`auditd_ns_tracker_processes{attribution="cgroup"}`, 310, 290},
		{`auditd_ns_tracker_watching{attribution="cgroup"}`, 1, 0},
		{`auditd_ns_tracker_idle{attribution="cgroup"}`, 1, 0},
		{`auditd_ns_tracker_proc_reads_total{attribution="cgroup"}`, 40, 65},
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
		{`auditd_ns_container_delivery_latency_seconds_bucket{container="other",le="0.1"}`, 9, 9},
		{`auditd_ns_container_delivery_latency_seconds_bucket{container="other",le="+Inf"}`, 10, 10},
		{`auditd_ns_container_delivery_latency_seconds_count{container="other"}`, 10, 10},
		{`auditd_ns_container_delivery_latency_seconds_sum{container="other"}`, 0.5, 0.5},
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
	// from the daemon: it must still come through, escaped and back.
	b := newBackend(t)
	b.SetKernel(control.KernelStatus{Attribution: "a\"b\\c\nd"})
	got := scrape(t, serveMetrics(t, b))
	if _, ok := got[`auditd_ns_kernel_attribution{mode="a\"b\\c\nd"}`]; !ok {
		t.Errorf("escaped label missing from %v", got)
	}
}

func TestMetricsBadLabel(t *testing.T) {
	// A label value that is not UTF-8 cannot be exposed: that series is
	// left out, the others are served.
	b := newBackend(t)
	b.SetKernel(control.KernelStatus{Lost: 3, Attribution: "\xff"})
	got := scrape(t, serveMetrics(t, b))
	for k := range got {
		if strings.HasPrefix(k, "auditd_ns_kernel_attribution") {
			t.Errorf("%s served", k)
		}
	}
	if got["auditd_ns_kernel_lost_records_total"] != 3 || got["auditd_ns_containers"] != 4 {
		t.Errorf("series missing beside the bad one: %v", got)
	}
}

// failingBackend fails Status, or DeliveryLatency.
type failingBackend struct {
	*controltest.Backend
	status, latency error
}

func (b *failingBackend) Status(ctx context.Context) (control.Status, error) {
	if b.status != nil {
		return control.Status{}, b.status
	}
	return b.Backend.Status(ctx)
}

func (b *failingBackend) DeliveryLatency(context.Context) ([]control.Latency, error) {
	return nil, b.latency
}

func TestMetricsBackendFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    *failingBackend
		want string
	}{
		{"status", &failingBackend{Backend: newBackend(t), status: errors.New("daemon stopping")}, "reading the daemon's status: daemon stopping"},
		{"latency", &failingBackend{Backend: newBackend(t), latency: errors.New("no clock")}, "reading the delivery latency: no clock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(serveMetrics(t, tc.b))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(body), tc.want) {
				t.Errorf("got %s %q, want 500 with %q", resp.Status, body, tc.want)
			}
			// No partial scrape: none of the Status series.
			if strings.Contains(string(body), "auditd_ns_") {
				t.Errorf("a failed scrape shows series: %s", body)
			}
		})
	}
}

// A scrape has the Go runtime's and the process's figures and the build's
// version beside the daemon's.
func TestMetricsProcessAndBuild(t *testing.T) {
	b, err := controltest.New()
	if err != nil {
		t.Fatal(err)
	}
	got := scrape(t, serveMetrics(t, b))
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total", "process_open_fds", "process_resident_memory_bytes", "process_start_time_seconds"} {
		if _, ok := got[name]; !ok {
			t.Errorf("no %s in the scrape", name)
		}
	}
	n := 0
	for k, v := range got {
		if strings.HasPrefix(k, "auditd_ns_build_info{") {
			n++
			if v != 1 || !strings.Contains(k, `goversion="go`) || !strings.Contains(k, `version="`) {
				t.Errorf("%s = %v", k, v)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d auditd_ns_build_info series, want 1", n)
	}
}
