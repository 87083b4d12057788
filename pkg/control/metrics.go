package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/auditd-ns/auditd-ns/internal/buildinfo"
)

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
// (and b.DeliveryLatency, for a LatencyBackend) at each scrape, in the
// format the scraper asks for (Prometheus text by default). Names start
// with auditd_ns_; per-container series have a container label. When b
// fails, the scrape gets a 500 and b's error is logged as a warning.
//
// Each scrape gets a registry of its own, holding one collector bound to
// the request's context: a Collector's Collect takes no context, and the
// Backend's reads should end when the scraper goes away.
func MetricsHandler(b Backend, log hclog.Logger) http.Handler {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	opts := promhttp.HandlerOpts{
		ErrorLog: log.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		// A series that cannot be made (a label value that is not UTF-8)
		// is left out and logged; when b fails, nothing is collected and
		// the scrape gets a 500 all the same.
		ErrorHandling: promhttp.ContinueOnError,
	}
	// The process's own figures, the same for every scrape: the Go
	// runtime's (go_*), the process's (process_*: CPU, memory, open
	// files), and which build runs (auditd_ns_build_info).
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "auditd_ns_build_info",
		Help:        "Always 1; its labels say which build of auditd-ns runs: version and goversion.",
		ConstLabels: prometheus.Labels{"version": buildinfo.Version(), "goversion": buildinfo.GoVersion()},
	})
	build.Set(1)
	self := prometheus.NewRegistry()
	self.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(&statusCollector{ctx: r.Context(), b: b})
		// When b fails nothing of the daemon's is collected: the scrape
		// gets its 500, not the process's figures alone.
		g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
			mfs, err := reg.Gather()
			if err != nil && len(mfs) == 0 {
				return nil, err
			}
			return prometheus.Gatherers{prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) { return mfs, err }), self}.Gather()
		})
		promhttp.HandlerFor(g, opts).ServeHTTP(w, r)
	})
}
