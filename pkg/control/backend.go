package control

import (
	"context"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/registry"
	"github.com/auditd-ns/auditd-ns/pkg/rules"
)

// Backend is what a Server asks to do the work: the daemon implements it.
// Every method may be called from several goroutines at once. Errors
// wrapping ErrInvalid, ErrNotFound, ErrExists, ErrConflict, ErrForbidden
// or ErrUnavailable are answered with their code (a *fileerr.Error as
// ErrInvalid, context.DeadlineExceeded as "timeout"); any other error as
// "internal", with its text.
type Backend interface {
	// Tree returns the current container tree. A Server reads it to check
	// a scoped caller before it calls a method that changes the tree.
	Tree() *registry.Tree
	// Register adds c (parsed and validated on its own by the Server) to
	// the tree, validated as a whole, opens its queue and starts its
	// delivery, and persists it. An existing name is ErrExists unless
	// o.Replace; a replacement keeps the container's queue and spool.
	Register(ctx context.Context, c *registry.Container, o RegisterOptions) (ContainerInfo, error)
	// Unregister stops copying records to the container called name and
	// disposes of its queue as o.Mode says (see ModeDrain, ModeSpool). A
	// container with nested containers is refused with ErrConflict
	// (registry.Tree.Without).
	Unregister(ctx context.Context, name string, o UnregisterOptions) (UnregisterResult, error)
	// PushRules replaces the filter rules of the container called name,
	// without restarting its delivery or losing its queue, and persists
	// them.
	PushRules(ctx context.Context, name string, u RulesUpdate) (ContainerInfo, error)
	// Containers lists every registered container, parents before their
	// children (registry.Tree.Containers order).
	Containers(ctx context.Context) ([]ContainerInfo, error)
	// Status reports the kernel, the host log and every container.
	Status(ctx context.Context) (Status, error)
}

// Guard is the scope check of a scoped socket's request. A Backend that is
// given a non-nil Guard must call it with the current tree, the one the
// change is about to be made to (never the tree after the change), under
// the lock that serialises changes to the tree, before anything else
// (even "exists" or "not found"), and refuse the change with the Guard's
// error, so that nothing changes the tree between the check and the
// change. It is the only place a scope is checked. A nil Guard means the
// caller is the host admin.
type Guard func(*registry.Tree) error

// RegisterOptions qualify a registration.
type RegisterOptions struct {
	// Replace lets the registration replace a container of the same name.
	Replace bool
	// Guard, when not nil, must pass; see Guard.
	Guard Guard
}

// UnregisterOptions qualify an unregistration.
type UnregisterOptions struct {
	// Mode is ModeDrain or ModeSpool; the Server never passes "".
	Mode string
	// Timeout bounds a drain; the Server always passes one from 1ms to
	// MaxDrainTimeout. The ctx of the call may end sooner (the daemon
	// stopping): then keep the copies as ModeSpool does.
	Timeout time.Duration
	// Owner, when not "", must be the container's registry
	// Container.Owner, checked under the lock of the change; any other
	// container is refused with ErrConflict and stays registered.
	Owner string
	// Guard, when not nil, must pass; see Guard.
	Guard Guard
}

// UnregisterResult says what became of an unregistered container's queue.
type UnregisterResult struct {
	Name string `json:"name"`
	Mode string `json:"mode"`
	// Drained is true when the queue was empty when the container was
	// removed: everything queued was delivered.
	Drained bool `json:"drained"`
	// Delivered counts the copies delivered while draining.
	Delivered uint64 `json:"delivered"`
	// Spooled counts the copies left in the spool on disk, kept for a
	// later registration of the same name.
	Spooled uint64 `json:"spooled"`
	// Dropped counts the copies lost because the container had no spool
	// (or its spool was full) when the queue was closed.
	Dropped uint64 `json:"dropped"`
}

// RulesUpdate is a container's new rules file.
type RulesUpdate struct {
	// Rules is the compiled program, parsed by the Server.
	Rules *rules.Program
	// Source and File are the rules file's text and name, for persisting
	// (as the container's rules: value) and for messages.
	Source []byte
	File   string
	// Guard, when not nil, must pass; see Guard.
	Guard Guard
}

// ContainerInfo describes one registered container.
type ContainerInfo struct {
	Name string `json:"name"`
	// ID is the audit container ID, nil for a container known by its
	// cgroup only. It is a string on the wire: contids are 64-bit and
	// JSON tools often read numbers as doubles.
	ID     *uint64 `json:"id,string,omitempty"`
	Cgroup string  `json:"cgroup,omitempty"`
	// Parent is the enclosing container's name, "" at the top.
	Parent string `json:"parent,omitempty"`
	// Target is registry.Target.String(): "file:PATH", "remote:H:P" or
	// "remote:H:P@NETNS".
	Target string `json:"target"`
	// Socket is the path of the container's scoped control socket, if any.
	Socket string `json:"socket,omitempty"`
	// Owner is the tool that registered the container ("oci-hook"), ""
	// for the host admin.
	Owner string `json:"owner,omitempty"`
	// View is registry.Container.View: "container" or "host".
	View string `json:"view,omitempty"`
	// Rules counts the container's filter rules (rules.Program.Len).
	Rules int `json:"rules"`
	// Connected is true while a remote target's connection is up, and for
	// a file target while its file is open and writable.
	Connected bool `json:"connected"`
	// Queued and QueuedBytes are the copies waiting for delivery, in
	// memory and spool together; SpoolBytes is the spool's size on disk.
	Queued      uint64 `json:"queued"`
	QueuedBytes uint64 `json:"queued_bytes"`
	SpoolBytes  uint64 `json:"spool_bytes"`
	// PeakQueuedBytes is the most bytes of copies the queue held in
	// memory at once since the daemon started: the largest burst its
	// target fell behind by. Beside the queue's memory limit it says how
	// close the target came to losing copies.
	PeakQueuedBytes uint64 `json:"peak_queued_bytes"`
	// Routed counts copies the container's rules kept and its queue took;
	// Filtered counts copies its rules dropped (a choice, not a loss).
	Routed   uint64 `json:"routed"`
	Filtered uint64 `json:"filtered"`
	// Delivered counts copies taken off the queue as delivered (committed);
	// Acked counts those the receiver acknowledged (a remote target) or
	// that were written (a file target).
	Delivered uint64 `json:"delivered"`
	Acked     uint64 `json:"acked"`
	// Namespaces are the namespace ids the container's first process had
	// when its contid was set (ns_dev, ns_net, ...: the kernel's op=set
	// CONTAINER_OP record), when the daemon saw that record.
	Namespaces map[string]string `json:"namespaces,omitempty"`
	// InFlight is the copies sent to a remote target and not yet
	// acknowledged; Retried counts copies sent again after a reconnect.
	InFlight int    `json:"in_flight"`
	Retried  uint64 `json:"retried"`
	// ReceiverBound is set when copies are queued while the remote
	// target's window is full and the sender waits for the receiver's
	// acks: the tenant's daemon, not auditd-ns, is the bottleneck.
	// ReceiverWaitSeconds is the total time the sender waited so.
	ReceiverBound       bool    `json:"receiver_bound,omitempty"`
	ReceiverWaitSeconds float64 `json:"receiver_wait_seconds,omitempty"`
	// Dropped counts copies lost, the sum of Drops; Drops gives them by
	// reason, with queue.Drops' reasons as keys: "full", "too-large",
	// "spool-error", "corrupt", "crash", "closed", "router-overflow" (the
	// records of the host the router left unrouted while the container was
	// registered: whose they were is unknown, so every container counts
	// all of them).
	Dropped uint64            `json:"dropped"`
	Drops   map[string]uint64 `json:"drops,omitempty"`
	// LastError is the last delivery error, with its time.
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// Status is the daemon's state.
type Status struct {
	// PID is the daemon's process id, Started when it started.
	PID     int       `json:"pid"`
	Started time.Time `json:"started,omitzero"`
	// Kernel and HostLog are nil in the answers of a scoped socket: they
	// are the host's, not the tenant's.
	Kernel  *KernelStatus  `json:"kernel,omitempty"`
	HostLog *HostLogStatus `json:"host_log,omitempty"`
	// Router is nil in a scoped socket's answers too, and when the daemon
	// routes nothing (no containers_dir).
	Router *RouterStatus `json:"router,omitempty"`
	// Tracker is the process-events tracker's (nil in a scoped socket's
	// answers, and when none runs: it could not start, or the daemon
	// routes nothing).
	Tracker *TrackerStatus `json:"tracker,omitempty"`
	// Containers are every container (a scoped socket: the scope's
	// subtree), parents before children.
	Containers []ContainerInfo `json:"containers"`
	// Plugins are auditd's plugins the daemon runs (nil in a scoped
	// socket's answers), in name order.
	Plugins []PluginStatus `json:"plugins,omitempty"`
	// Export is the host log's export to NATS JetStream (nil when there
	// is none, and in a scoped socket's answers).
	Export *ExportStatus `json:"export_jetstream,omitempty"`
	// Consume is the JetStream consumer of consume mode (nil otherwise).
	Consume *ConsumeStatus `json:"consume_jetstream,omitempty"`
}

// ExportStatus is the host log's JetStream export: its queue and its
// publisher (pkg/jetstream.Status).
type ExportStatus struct {
	URL       string `json:"url"`
	Subject   string `json:"subject"`
	Stream    string `json:"stream,omitempty"`
	Connected bool   `json:"connected"`
	// Queued copies wait to be published; Dropped were lost (queue full).
	Queued  uint64 `json:"queued"`
	Dropped uint64 `json:"dropped"`
	// Acked were taken by the stream as new, Duplicates as copies it had
	// (sent again after a lost ack); Retried were sent again.
	Acked      uint64 `json:"acked"`
	Duplicates uint64 `json:"duplicates"`
	Retried    uint64 `json:"retried"`
	InFlight   int    `json:"in_flight"`
	// Published counts messages sent, sent-again ones included; Connects
	// counts connections made (the first and every reconnect).
	Published     uint64    `json:"published"`
	Connects      uint64    `json:"connects"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// ConsumeStatus is consume mode's JetStream consumer
// (pkg/jetstream.ConsumerStatus).
type ConsumeStatus struct {
	URL       string `json:"url"`
	Stream    string `json:"stream"`
	Durable   string `json:"durable"`
	Subject   string `json:"subject"`
	Connected bool   `json:"connected"`
	// Written lines went to the log; Acked messages were acknowledged
	// after it was flushed; Redelivered came again (an earlier delivery
	// was not acknowledged); Pending is the lag, the messages the stream
	// holds for the consumer beyond the last one fetched.
	Written     uint64 `json:"written"`
	Acked       uint64 `json:"acked"`
	Redelivered uint64 `json:"redelivered"`
	Pending     uint64 `json:"pending"`
	// LostNotices were written for hosts that dropped copies; Replaced
	// and Truncated lines were cleaned; Refused messages had a subject
	// that names no host.
	LostNotices   uint64    `json:"lost_notices"`
	Replaced      uint64    `json:"replaced"`
	Truncated     uint64    `json:"truncated"`
	Refused       uint64    `json:"refused"`
	Connects      uint64    `json:"connects"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// PluginStatus is one plugin's state and counters (pkg/plugin.Stat).
type PluginStatus struct {
	// Name is its file's name in plugin_dir; Path its program, or
	// builtin_af_unix and the socket.
	Name string `json:"name"`
	Path string `json:"path"`
	// State is running, exited (restarted at the next record), failed
	// (not restarted any more), stopped, suspended (overflow_action),
	// listening or connected (af_unix).
	State string `json:"state"`
	PID   int    `json:"pid,omitempty"`
	// Queued records wait in its queue of QDepth (q_depth).
	Queued int `json:"queued"`
	QDepth int `json:"q_depth"`
	// Sent were written to it; Dropped were not (queue full, suspended,
	// failed, or no af_unix reader). Both count since the daemon started.
	Sent      uint64 `json:"sent"`
	Dropped   uint64 `json:"dropped"`
	Restarts  int    `json:"restarts"`
	LastError string `json:"last_error,omitempty"`
}

// Attributions, KernelStatus.Attribution: how records are matched to
// containers.
const (
	AttributionContid = "contid" // the kernel's audit container ID (patched kernel)
	AttributionCgroup = "cgroup" // the cgroup of the record's pid (stock kernel)
)

// KernelStatus is the kernel's audit status as the daemon last read it.
type KernelStatus struct {
	// Enabled is 0, 1, or 2 (locked), as auditctl -s prints it.
	Enabled uint32 `json:"enabled"`
	// PID is the registered audit daemon's pid.
	PID          uint32 `json:"pid"`
	Failure      uint32 `json:"failure"`
	RateLimit    uint32 `json:"rate_limit"`
	BacklogLimit uint32 `json:"backlog_limit"`
	// BacklogWaitTime is in jiffies, as the kernel reports it.
	BacklogWaitTime uint32 `json:"backlog_wait_time"`
	Backlog         uint32 `json:"backlog"`
	// Lost is the kernel's lost counter (since boot or its last reset).
	Lost uint64 `json:"lost"`
	// Attribution is AttributionContid or AttributionCgroup.
	Attribution string `json:"attribution"`
	// Received counts records the daemon received from the kernel.
	Received uint64 `json:"received"`
	// Foreign counts netlink messages dropped because another process,
	// not the kernel, sent them to the daemon's socket.
	Foreign uint64 `json:"foreign"`
	// Checked is when these figures were read.
	Checked time.Time `json:"checked,omitzero"`
}

// HostLogStatus is the host log writer's state (hostlog.Stats).
type HostLogStatus struct {
	Path      string `json:"path"`
	Records   uint64 `json:"records"`
	Bytes     uint64 `json:"bytes"`
	Rotations uint64 `json:"rotations"`
	// Size is the current file's size in bytes.
	Size int64 `json:"size"`
	// Suspended is true while a suspend action stops writing.
	Suspended bool `json:"suspended"`
	// Dropped counts records that did not reach the file (suspended,
	// write errors).
	Dropped uint64 `json:"dropped"`
}

// RouterStatus counts the router's work since the daemon started.
type RouterStatus struct {
	// Records and Events are what it reassembled; Partial, events closed
	// by the timeout without their EOE.
	Records uint64 `json:"records"`
	Events  uint64 `json:"events"`
	Partial uint64 `json:"partial"`
	// Unattributed counts events (stock kernel) whose process is in no
	// registered container.
	Unattributed uint64 `json:"unattributed"`
	// Overflow counts records logged but not routed: the router was too
	// far behind. Malformed counts records whose header did not parse;
	// BadChain, events whose CONTAINER_ID chain did not.
	Overflow  uint64 `json:"overflow"`
	Malformed uint64 `json:"malformed"`
	BadChain  uint64 `json:"bad_chain"`
}

// TrackerStatus counts the work of the process-events tracker (package
// procs, procs.Stats) since the daemon started: on a stock kernel the
// attribution of records to containers by cgroup, on a patched kernel the
// processes of containers known by contid, for their views.
type TrackerStatus struct {
	// Attribution is AttributionCgroup when the tracker attributes
	// records, AttributionContid when it only follows contid containers'
	// processes.
	Attribution string `json:"attribution"`
	// Watching is true while writes to cgroup.procs are watched (a
	// process that moves itself is then seen doing so).
	Watching bool `json:"watching"`
	// Events counts the process events read (fork, exec, exit); Overruns,
	// the reads the kernel answered with ENOBUFS, having dropped events.
	Events   uint64 `json:"events"`
	Overruns uint64 `json:"overruns"`
	// ExecMissed counts execs whose /proc/PID/cgroup was gone before it was
	// read (or read only once the process was exiting, on a host with v1
	// hierarchies): the process keeps the cgroups it had at its fork, wrong
	// if it moved itself before its exec.
	ExecMissed uint64 `json:"exec_missed"`
	// Moves counts writers of a cgroup.procs seen in the cgroup they wrote
	// to (they moved themselves); Gone, writes whose writer was gone when
	// read, which stay bounded between its last two sightings.
	Moves uint64 `json:"moves"`
	Gone  uint64 `json:"gone"`
	// Hits and ParentHits count the records' lookups answered from the
	// process's history, or from its parent's (its fork was missed);
	// Ambiguous, those of them that fell where a move is only bounded,
	// answered by the cgroup holding every place the process may have been
	// (the record goes to no container narrower than that one); Misses,
	// the lookups not answered (the record goes to the host log only).
	Hits       uint64 `json:"hits"`
	ParentHits uint64 `json:"parent_hits"`
	Ambiguous  uint64 `json:"ambiguous"`
	Misses     uint64 `json:"misses"`
	// Processes is the processes whose history is kept, exited ones kept
	// for a while included; Dropped counts live processes not kept because
	// the table was full of live ones.
	Processes int    `json:"processes"`
	Dropped   uint64 `json:"dropped"`
	// Idle is true while no container the tracker attributes to is
	// registered (and none asks for a view): forks and execs are then not
	// read from /proc. ProcReads counts the reads of /proc/PID/cgroup at
	// forks and execs.
	Idle      bool   `json:"idle"`
	ProcReads uint64 `json:"proc_reads"`
}

// LatencyBackend is a Backend that also measures delivery latency: the
// time from a record's arrival from the kernel to its delivery (acked, or
// written) per container. The metrics endpoint exports it as a histogram
// when the Backend implements this.
type LatencyBackend interface {
	Backend
	DeliveryLatency(ctx context.Context) ([]Latency, error)
}

// Latency is one container's delivery latency histogram.
type Latency struct {
	Name string
	// Count and Sum (seconds) are over every delivered copy.
	Count uint64
	Sum   float64
	// Buckets are cumulative counts of copies delivered within each
	// upper bound (seconds), in increasing order of UpperBound.
	Buckets []Bucket
}

// Bucket is one cumulative bucket of a Latency histogram.
type Bucket struct {
	UpperBound float64
	Count      uint64
}

// Describe fills the fields of a ContainerInfo that come from the
// registration itself; the daemon adds the queue and delivery figures.
func Describe(c *registry.Container) ContainerInfo {
	info := ContainerInfo{Name: c.Name, Cgroup: c.Cgroup, Parent: c.Parent, Target: c.Deliver.String(), Socket: c.Socket, Owner: c.Owner, View: c.View}
	if c.HasID() {
		id := c.ID
		info.ID = &id
	}
	if c.Rules != nil {
		info.Rules = c.Rules.Len()
	}
	return info
}
