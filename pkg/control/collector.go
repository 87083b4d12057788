package control

import (
	"context"
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// statusCollector is the prometheus.Collector of the metrics endpoint:
// at each Collect it reads b's Status (and DeliveryLatency, for a
// LatencyBackend) under ctx, and turns the figures into const metrics.
// It keeps nothing between scrapes.
type statusCollector struct {
	ctx context.Context
	b   Backend
}

func newDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	kernelAttribution = newDesc("auditd_ns_kernel_attribution", "How records are attributed to containers: contid (patched kernel) or cgroup.", "mode")
	containersDesc    = newDesc("auditd_ns_containers", "Registered containers.")
	droppedDesc       = newDesc("auditd_ns_container_dropped_copies_total", "Copies lost, by reason.", "container", "reason")
	latencyDesc       = newDesc("auditd_ns_container_delivery_latency_seconds", "Time from a record's arrival to the delivery of a container's copy.", "container")
)

// family is a series with one value, read from a T.
type family[T any] struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(*T) float64
}

var kernelFamilies = []family[KernelStatus]{
	{newDesc("auditd_ns_kernel_enabled", "The kernel's audit enabled flag: 0, 1, or 2 (locked)."), prometheus.GaugeValue, func(k *KernelStatus) float64 { return float64(k.Enabled) }},
	{newDesc("auditd_ns_kernel_lost_records_total", "The kernel's lost counter: records the kernel could not queue."), prometheus.CounterValue, func(k *KernelStatus) float64 { return float64(k.Lost) }},
	{newDesc("auditd_ns_kernel_backlog_records", "Records waiting in the kernel's audit backlog."), prometheus.GaugeValue, func(k *KernelStatus) float64 { return float64(k.Backlog) }},
	{newDesc("auditd_ns_kernel_backlog_limit_records", "The kernel's backlog limit."), prometheus.GaugeValue, func(k *KernelStatus) float64 { return float64(k.BacklogLimit) }},
	{newDesc("auditd_ns_kernel_received_records_total", "Records received from the kernel."), prometheus.CounterValue, func(k *KernelStatus) float64 { return float64(k.Received) }},
	{newDesc("auditd_ns_kernel_foreign_messages_total", "Netlink messages dropped because they did not come from the kernel."), prometheus.CounterValue, func(k *KernelStatus) float64 { return float64(k.Foreign) }},
}

var hostLogFamilies = []family[HostLogStatus]{
	{newDesc("auditd_ns_hostlog_records_total", "Records written to the host log."), prometheus.CounterValue, func(h *HostLogStatus) float64 { return float64(h.Records) }},
	{newDesc("auditd_ns_hostlog_bytes_total", "Bytes written to the host log."), prometheus.CounterValue, func(h *HostLogStatus) float64 { return float64(h.Bytes) }},
	{newDesc("auditd_ns_hostlog_rotations_total", "Rotations of the host log."), prometheus.CounterValue, func(h *HostLogStatus) float64 { return float64(h.Rotations) }},
	{newDesc("auditd_ns_hostlog_size_bytes", "Size of the current host log file."), prometheus.GaugeValue, func(h *HostLogStatus) float64 { return float64(h.Size) }},
	{newDesc("auditd_ns_hostlog_suspended", "1 while a suspend action stops writing the host log."), prometheus.GaugeValue, func(h *HostLogStatus) float64 { return boolf(h.Suspended) }},
	{newDesc("auditd_ns_hostlog_dropped_records_total", "Records that did not reach the host log."), prometheus.CounterValue, func(h *HostLogStatus) float64 { return float64(h.Dropped) }},
}

var routerFamilies = []family[RouterStatus]{
	{newDesc("auditd_ns_router_records_total", "Records the router reassembled into events."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Records) }},
	{newDesc("auditd_ns_router_events_total", "Events the router routed."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Events) }},
	{newDesc("auditd_ns_router_partial_events_total", "Events closed by the timeout without their EOE."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Partial) }},
	{newDesc("auditd_ns_router_unattributed_events_total", "Events whose process is in no registered container (stock kernel)."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Unattributed) }},
	{newDesc("auditd_ns_router_overflow_records_total", "Records logged but not routed: the router was too far behind."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Overflow) }},
	{newDesc("auditd_ns_router_malformed_records_total", "Records whose header did not parse (logged, never routed)."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.Malformed) }},
	{newDesc("auditd_ns_router_bad_chain_events_total", "Events whose CONTAINER_ID chain did not parse."), prometheus.CounterValue, func(r *RouterStatus) float64 { return float64(r.BadChain) }},
}

// trackerFamilies are the process-events tracker's, with its attribution
// as a label (cgroup or contid).
var trackerFamilies = []family[TrackerStatus]{
	{newDesc("auditd_ns_tracker_watching", "1 while the process-events tracker watches writes to cgroup.procs (processes that move themselves are seen).", "attribution"), prometheus.GaugeValue, func(t *TrackerStatus) float64 { return boolf(t.Watching) }},
	{newDesc("auditd_ns_tracker_process_events_total", "Process events (fork, exec, exit) the tracker read.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Events) }},
	{newDesc("auditd_ns_tracker_overruns_total", "Reads of process events that failed because the kernel had dropped some (ENOBUFS).", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Overruns) }},
	{newDesc("auditd_ns_tracker_missed_execs_total", "Execs whose process was gone (or, with v1 cgroups, exiting) before its cgroups were read: it keeps those of its fork, wrong if it moved itself before the exec.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.ExecMissed) }},
	{newDesc("auditd_ns_tracker_self_moves_total", "Writers of a cgroup.procs seen in the cgroup they wrote to: processes that moved themselves.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Moves) }},
	{newDesc("auditd_ns_tracker_gone_moves_total", "Writes to a cgroup.procs whose writer was gone when read: where it went is known only between two sightings.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Gone) }},
	{newDesc("auditd_ns_tracker_hit_lookups_total", "Records' process lookups answered from the process's history.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Hits) }},
	{newDesc("auditd_ns_tracker_parent_lookups_total", "Records' process lookups answered from the parent's history (the fork was missed).", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.ParentHits) }},
	{newDesc("auditd_ns_tracker_ambiguous_lookups_total", "Lookups that fell where a move is only bounded: the cgroup holding every place the process may have been answered, no narrower container.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Ambiguous) }},
	{newDesc("auditd_ns_tracker_missed_lookups_total", "Records' process lookups not answered: the record went to the host log only.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Misses) }},
	{newDesc("auditd_ns_tracker_processes", "Processes whose cgroup history the tracker keeps, recently exited ones included.", "attribution"), prometheus.GaugeValue, func(t *TrackerStatus) float64 { return float64(t.Processes) }},
	{newDesc("auditd_ns_tracker_idle", "1 while no container the tracker attributes to is registered (and none asks for a view): forks and execs are not read from /proc.", "attribution"), prometheus.GaugeValue, func(t *TrackerStatus) float64 { return boolf(t.Idle) }},
	{newDesc("auditd_ns_tracker_proc_reads_total", "Reads of /proc/PID/cgroup at forks and execs.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.ProcReads) }},
	{newDesc("auditd_ns_tracker_dropped_processes_total", "Live processes not kept because the tracker's table was full of live ones.", "attribution"), prometheus.CounterValue, func(t *TrackerStatus) float64 { return float64(t.Dropped) }},
}

// containerFamilies have a container label.
var containerFamilies = []family[ContainerInfo]{
	{newDesc("auditd_ns_container_connected", "1 while the container's target is connected (remote) or open (file).", "container"), prometheus.GaugeValue, func(c *ContainerInfo) float64 { return boolf(c.Connected) }},
	{newDesc("auditd_ns_container_queued_copies", "Copies waiting for delivery, in memory and spool.", "container"), prometheus.GaugeValue, func(c *ContainerInfo) float64 { return float64(c.Queued) }},
	{newDesc("auditd_ns_container_queued_bytes", "Bytes of the copies waiting for delivery.", "container"), prometheus.GaugeValue, func(c *ContainerInfo) float64 { return float64(c.QueuedBytes) }},
	{newDesc("auditd_ns_container_spool_bytes", "Size of the container's spool on disk.", "container"), prometheus.GaugeValue, func(c *ContainerInfo) float64 { return float64(c.SpoolBytes) }},
	{newDesc("auditd_ns_container_routed_copies_total", "Copies the container's rules kept and its queue took.", "container"), prometheus.CounterValue, func(c *ContainerInfo) float64 { return float64(c.Routed) }},
	{newDesc("auditd_ns_container_filtered_copies_total", "Copies the container's rules dropped.", "container"), prometheus.CounterValue, func(c *ContainerInfo) float64 { return float64(c.Filtered) }},
	{newDesc("auditd_ns_container_delivered_copies_total", "Copies delivered (committed off the queue).", "container"), prometheus.CounterValue, func(c *ContainerInfo) float64 { return float64(c.Delivered) }},
	{newDesc("auditd_ns_container_receiver_bound", "1 while copies are queued and the remote target's sender waits for the receiver's acks: the tenant is the bottleneck.", "container"), prometheus.GaugeValue, func(c *ContainerInfo) float64 { return boolf(c.ReceiverBound) }},
	{newDesc("auditd_ns_container_receiver_wait_seconds_total", "Time the remote target's sender waited for the receiver's acks with its window full.", "container"), prometheus.CounterValue, func(c *ContainerInfo) float64 { return c.ReceiverWaitSeconds }},
	{newDesc("auditd_ns_container_acked_copies_total", "Copies acknowledged by the receiver, or written to a file target.", "container"), prometheus.CounterValue, func(c *ContainerInfo) float64 { return float64(c.Acked) }},
}

// pluginFamilies have a plugin label (the plugin's file name).
var pluginFamilies = []family[PluginStatus]{
	{newDesc("auditd_ns_plugin_running", "1 while the plugin's program runs (or its af_unix socket listens).", "plugin"), prometheus.GaugeValue, func(p *PluginStatus) float64 {
		return boolf(p.State == "running" || p.State == "listening" || p.State == "connected")
	}},
	{newDesc("auditd_ns_plugin_queued_records", "Records waiting in the plugin's queue.", "plugin"), prometheus.GaugeValue, func(p *PluginStatus) float64 { return float64(p.Queued) }},
	{newDesc("auditd_ns_plugin_sent_records_total", "Records written to the plugin.", "plugin"), prometheus.CounterValue, func(p *PluginStatus) float64 { return float64(p.Sent) }},
	{newDesc("auditd_ns_plugin_dropped_records_total", "Records the plugin did not get: its queue was full, or it was suspended, failed, or had no reader.", "plugin"), prometheus.CounterValue, func(p *PluginStatus) float64 { return float64(p.Dropped) }},
	{newDesc("auditd_ns_plugin_restarts_total", "Restarts of the plugin's program after it died.", "plugin"), prometheus.CounterValue, func(p *PluginStatus) float64 { return float64(p.Restarts) }},
}

// exportFamilies are the host log's JetStream export, with a subject label.
var exportFamilies = []family[ExportStatus]{
	{newDesc("auditd_ns_export_connected", "1 while the JetStream export is connected.", "subject"), prometheus.GaugeValue, func(e *ExportStatus) float64 { return boolf(e.Connected) }},
	{newDesc("auditd_ns_export_queued_records", "Records waiting in the export's queue, in memory and spool.", "subject"), prometheus.GaugeValue, func(e *ExportStatus) float64 { return float64(e.Queued) }},
	{newDesc("auditd_ns_export_dropped_records_total", "Records the export's queue dropped (full).", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Dropped) }},
	{newDesc("auditd_ns_export_published_messages_total", "Messages published, sent-again ones included.", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Published) }},
	{newDesc("auditd_ns_export_acked_records_total", "Records the stream acknowledged as new.", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Acked) }},
	{newDesc("auditd_ns_export_duplicate_records_total", "Records the stream acknowledged as duplicates (sent again after a lost ack).", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Duplicates) }},
	{newDesc("auditd_ns_export_retried_messages_total", "Messages sent again because their ack did not come.", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Retried) }},
	{newDesc("auditd_ns_export_in_flight_messages", "Messages sent and not yet acknowledged.", "subject"), prometheus.GaugeValue, func(e *ExportStatus) float64 { return float64(e.InFlight) }},
	{newDesc("auditd_ns_export_connects_total", "Connections made to the servers: the first and every reconnect.", "subject"), prometheus.CounterValue, func(e *ExportStatus) float64 { return float64(e.Connects) }},
}

// consumeFamilies are consume mode's JetStream consumer, with a durable
// label.
var consumeFamilies = []family[ConsumeStatus]{
	{newDesc("auditd_ns_consume_connected", "1 while the JetStream consumer is connected.", "durable"), prometheus.GaugeValue, func(c *ConsumeStatus) float64 { return boolf(c.Connected) }},
	{newDesc("auditd_ns_consume_written_lines_total", "Lines the consumer wrote to the log.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.Written) }},
	{newDesc("auditd_ns_consume_acked_messages_total", "Messages acknowledged after their lines were written and flushed.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.Acked) }},
	{newDesc("auditd_ns_consume_redelivered_messages_total", "Messages the server delivered again.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.Redelivered) }},
	{newDesc("auditd_ns_consume_pending_messages", "The consumer's lag: messages the stream holds for it beyond the last one fetched.", "durable"), prometheus.GaugeValue, func(c *ConsumeStatus) float64 { return float64(c.Pending) }},
	{newDesc("auditd_ns_consume_lost_notices_total", "Queue-lost notices written for hosts that dropped copies.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.LostNotices) }},
	{newDesc("auditd_ns_consume_refused_messages_total", "Messages not written: their subject names no host.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.Refused) }},
	{newDesc("auditd_ns_consume_connects_total", "Connections made to the servers: the first and every reconnect.", "durable"), prometheus.CounterValue, func(c *ConsumeStatus) float64 { return float64(c.Connects) }},
}

// Describe sends every Desc the collector may use, so that the registry
// checks what Collect sends against them.
func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- kernelAttribution
	ch <- containersDesc
	ch <- droppedDesc
	ch <- latencyDesc
	for _, f := range kernelFamilies {
		ch <- f.desc
	}
	for _, f := range hostLogFamilies {
		ch <- f.desc
	}
	for _, f := range routerFamilies {
		ch <- f.desc
	}
	for _, f := range trackerFamilies {
		ch <- f.desc
	}
	for _, f := range containerFamilies {
		ch <- f.desc
	}
	for _, f := range pluginFamilies {
		ch <- f.desc
	}
	for _, f := range exportFamilies {
		ch <- f.desc
	}
	for _, f := range consumeFamilies {
		ch <- f.desc
	}
}

// Collect reads the Backend's figures. When a read fails it sends only
// the error, so that the scrape fails as a whole rather than showing
// some series and not others.
func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.b.Status(c.ctx)
	if err != nil {
		invalid(ch, fmt.Errorf("reading the daemon's status: %w", err))
		return
	}
	var lat []Latency
	if lb, ok := c.b.(LatencyBackend); ok {
		if lat, err = lb.DeliveryLatency(c.ctx); err != nil {
			invalid(ch, fmt.Errorf("reading the delivery latency: %w", err))
			return
		}
	}
	if k := st.Kernel; k != nil {
		collectAll(ch, kernelFamilies, k)
		constMetric(ch, kernelAttribution, prometheus.GaugeValue, 1, k.Attribution)
	}
	if h := st.HostLog; h != nil {
		collectAll(ch, hostLogFamilies, h)
	}
	if r := st.Router; r != nil {
		collectAll(ch, routerFamilies, r)
	}
	if t := st.Tracker; t != nil {
		collectAll(ch, trackerFamilies, t, t.Attribution)
	}
	constMetric(ch, containersDesc, prometheus.GaugeValue, float64(len(st.Containers)))
	for i := range st.Containers {
		collectContainer(ch, &st.Containers[i])
	}
	for _, l := range lat {
		collectLatency(ch, l)
	}
	for i := range st.Plugins {
		collectAll(ch, pluginFamilies, &st.Plugins[i], st.Plugins[i].Name)
	}
	if e := st.Export; e != nil {
		collectAll(ch, exportFamilies, e, e.Subject)
	}
	if c := st.Consume; c != nil {
		collectAll(ch, consumeFamilies, c, c.Durable)
	}
}

func collectAll[T any](ch chan<- prometheus.Metric, fs []family[T], v *T, labels ...string) {
	for _, f := range fs {
		constMetric(ch, f.desc, f.typ, f.value(v), labels...)
	}
}

func collectContainer(ch chan<- prometheus.Metric, c *ContainerInfo) {
	collectAll(ch, containerFamilies, c, c.Name)
	var sum uint64
	for r, n := range c.Drops {
		sum += n
		if r != "other" {
			constMetric(ch, droppedDesc, prometheus.CounterValue, float64(n), c.Name, r)
		}
	}
	// "other" is always there, so that every container has a series from
	// the start: Dropped beyond the reasons given.
	other := c.Drops["other"]
	if c.Dropped > sum {
		other += c.Dropped - sum
	}
	constMetric(ch, droppedDesc, prometheus.CounterValue, float64(other), c.Name, "other")
}

// collectLatency sends l as a histogram. Its +Inf bucket is l.Count,
// whatever l.Buckets say.
func collectLatency(ch chan<- prometheus.Metric, l Latency) {
	buckets := make(map[float64]uint64, len(l.Buckets))
	for _, b := range l.Buckets {
		if !math.IsInf(b.UpperBound, +1) && !math.IsNaN(b.UpperBound) {
			buckets[b.UpperBound] = b.Count
		}
	}
	m, err := prometheus.NewConstHistogram(latencyDesc, l.Count, l.Sum, buckets, l.Name)
	send(ch, m, err)
}

func constMetric(ch chan<- prometheus.Metric, d *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, typ, v, labels...)
	send(ch, m, err)
}

// send sends m, or err as an invalid metric: the registry reports it and
// leaves the series out.
func send(ch chan<- prometheus.Metric, m prometheus.Metric, err error) {
	if err != nil {
		invalid(ch, err)
		return
	}
	ch <- m
}

func invalid(ch chan<- prometheus.Metric, err error) {
	ch <- prometheus.NewInvalidMetric(prometheus.NewInvalidDesc(err), err)
}

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
