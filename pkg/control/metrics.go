package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MetricsContentType is the Prometheus text exposition format the
// metrics endpoint serves.
const MetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// ServeMetrics serves the metrics of b at http://addr/metrics until ctx
// ends, then returns nil. An empty addr means metrics are off: it returns
// nil at once.
func ServeMetrics(ctx context.Context, addr string, b Backend, log hclog.Logger) error {
	if addr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serving metrics: %w", err)
	}
	return ServeMetricsOn(ctx, ln, b, log)
}

// ServeMetricsOn is ServeMetrics on a listener of the caller's; it closes
// ln when ctx ends.
func ServeMetricsOn(ctx context.Context, ln net.Listener, b Backend, log hclog.Logger) error {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", MetricsHandler(b, log))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	log.Info("serving metrics", "addr", ln.Addr().String())
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("serving metrics: %w", err)
}

// MetricsHandler answers a scrape with b's figures, read from b.Status
// (and b.DeliveryLatency, for a LatencyBackend) at each scrape. Names
// start with auditd_ns_; per-container series have a container label.
func MetricsHandler(b Backend, log hclog.Logger) http.Handler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, err := b.Status(r.Context())
		var lat []Latency
		if lb, ok := b.(LatencyBackend); ok && err == nil {
			lat, err = lb.DeliveryLatency(r.Context())
		}
		if err != nil {
			log.Warn("metrics: reading the daemon's status", "error", err)
			http.Error(w, "reading the daemon's status: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", MetricsContentType)
		bw := bufio.NewWriter(w)
		writeMetrics(&expo{w: bw}, st, lat)
		bw.Flush()
	})
}

func writeMetrics(e *expo, st Status, lat []Latency) {
	if k := st.Kernel; k != nil {
		writeKernel(e, k)
	}
	if h := st.HostLog; h != nil {
		writeHostLog(e, h)
	}
	e.one("auditd_ns_containers", "gauge", "Registered containers.", float64(len(st.Containers)))
	writeContainers(e, st.Containers)
	if len(lat) > 0 {
		e.family("auditd_ns_container_delivery_latency_seconds", "histogram",
			"Time from a record's arrival to the delivery of a container's copy.")
		for _, l := range lat {
			e.histogram("auditd_ns_container_delivery_latency_seconds", l, label{"container", l.Name})
		}
	}
}

func writeKernel(e *expo, k *KernelStatus) {
	e.one("auditd_ns_kernel_enabled", "gauge", "The kernel's audit enabled flag: 0, 1, or 2 (locked).", float64(k.Enabled))
	e.one("auditd_ns_kernel_lost_records_total", "counter", "The kernel's lost counter: records the kernel could not queue.", float64(k.Lost))
	e.one("auditd_ns_kernel_backlog_records", "gauge", "Records waiting in the kernel's audit backlog.", float64(k.Backlog))
	e.one("auditd_ns_kernel_backlog_limit_records", "gauge", "The kernel's backlog limit.", float64(k.BacklogLimit))
	e.one("auditd_ns_kernel_received_records_total", "counter", "Records received from the kernel.", float64(k.Received))
	e.family("auditd_ns_kernel_attribution", "gauge", "How records are attributed to containers: contid (patched kernel) or cgroup.")
	e.sample("auditd_ns_kernel_attribution", 1, label{"mode", k.Attribution})
}

func writeHostLog(e *expo, h *HostLogStatus) {
	e.one("auditd_ns_hostlog_records_total", "counter", "Records written to the host log.", float64(h.Records))
	e.one("auditd_ns_hostlog_bytes_total", "counter", "Bytes written to the host log.", float64(h.Bytes))
	e.one("auditd_ns_hostlog_rotations_total", "counter", "Rotations of the host log.", float64(h.Rotations))
	e.one("auditd_ns_hostlog_size_bytes", "gauge", "Size of the current host log file.", float64(h.Size))
	e.one("auditd_ns_hostlog_suspended", "gauge", "1 while a suspend action stops writing the host log.", boolf(h.Suspended))
	e.one("auditd_ns_hostlog_dropped_records_total", "counter", "Records that did not reach the host log.", float64(h.Dropped))
}

// containerFamilies are the per-container series with one value each.
var containerFamilies = []struct {
	name, typ, help string
	value           func(*ContainerInfo) float64
}{
	{"auditd_ns_container_connected", "gauge", "1 while the container's target is connected (remote) or open (file).", func(c *ContainerInfo) float64 { return boolf(c.Connected) }},
	{"auditd_ns_container_queued_copies", "gauge", "Copies waiting for delivery, in memory and spool.", func(c *ContainerInfo) float64 { return float64(c.Queued) }},
	{"auditd_ns_container_queued_bytes", "gauge", "Bytes of the copies waiting for delivery.", func(c *ContainerInfo) float64 { return float64(c.QueuedBytes) }},
	{"auditd_ns_container_spool_bytes", "gauge", "Size of the container's spool on disk.", func(c *ContainerInfo) float64 { return float64(c.SpoolBytes) }},
	{"auditd_ns_container_routed_copies_total", "counter", "Copies the container's rules kept and its queue took.", func(c *ContainerInfo) float64 { return float64(c.Routed) }},
	{"auditd_ns_container_filtered_copies_total", "counter", "Copies the container's rules dropped.", func(c *ContainerInfo) float64 { return float64(c.Filtered) }},
	{"auditd_ns_container_delivered_copies_total", "counter", "Copies delivered (committed off the queue).", func(c *ContainerInfo) float64 { return float64(c.Delivered) }},
	{"auditd_ns_container_acked_copies_total", "counter", "Copies acknowledged by the receiver, or written to a file target.", func(c *ContainerInfo) float64 { return float64(c.Acked) }},
}

func writeContainers(e *expo, cs []ContainerInfo) {
	for _, f := range containerFamilies {
		e.family(f.name, f.typ, f.help)
		for i := range cs {
			e.sample(f.name, f.value(&cs[i]), label{"container", cs[i].Name})
		}
	}
	e.family("auditd_ns_container_dropped_copies_total", "counter", "Copies lost, by reason.")
	for _, c := range cs {
		reasons := make([]string, 0, len(c.Drops))
		var sum uint64
		for r, n := range c.Drops {
			reasons = append(reasons, r)
			sum += n
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			e.sample("auditd_ns_container_dropped_copies_total", float64(c.Drops[r]), label{"container", c.Name}, label{"reason", r})
		}
		// "other" is always there, so that every container has a series
		// from the start: Dropped beyond the reasons given.
		other := uint64(0)
		if c.Dropped > sum {
			other = c.Dropped - sum
		}
		e.sample("auditd_ns_container_dropped_copies_total", float64(other), label{"container", c.Name}, label{"reason", "other"})
	}
}
