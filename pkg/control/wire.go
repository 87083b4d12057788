package control

import "time"

// Version is the protocol version this package speaks, the "v" of every
// request and answer.
const Version = 1

// DefaultMaxRequest is the longest request line a Server accepts when
// Server.MaxRequest is zero: 1 MiB, newline included.
const DefaultMaxRequest = 1 << 20

// Operations, the "op" of a request.
const (
	OpRegister   = "register"
	OpUnregister = "unregister"
	OpRulesPush  = "rules-push"
	OpContainers = "containers"
	OpStatus     = "status"
)

// Unregister modes, the "mode" of an unregister request.
const (
	// ModeDrain stops copying records to the container, then waits, up to
	// the request's timeout, until its queue is delivered. What is still
	// queued when the time is up is kept as ModeSpool keeps it, and the
	// answer says how much.
	ModeDrain = "drain"
	// ModeSpool stops copying at once and closes the queue: copies in
	// memory go to the container's disk spool, which stays on disk and is
	// resumed if a container of the same name is registered again. A
	// container without a spool loses its queued copies, counted as
	// dropped (reason "closed").
	ModeSpool = "spool"
)

// DefaultDrainTimeout is how long an unregister in ModeDrain waits when
// the request gives no timeout; MaxDrainTimeout is the longest it waits.
const (
	DefaultDrainTimeout = 30 * time.Second
	MaxDrainTimeout     = 10 * time.Minute
)

// Request is one request line. Which fields an operation reads:
//
//	register    file, source, replace
//	unregister  name, mode, timeout_ms
//	rules-push  name, file, source
//	containers  -
//	status      -
type Request struct {
	V  int    `json:"v"`
	Op string `json:"op"`
	// Name is the container an unregister or rules-push is about.
	Name string `json:"name,omitempty"`
	// File names the YAML in Source in error messages; it is not read.
	File string `json:"file,omitempty"`
	// Source is a container file (register) or a rules file (rules-push).
	Source string `json:"source,omitempty"`
	// Replace lets register replace a container of the same name, keeping
	// its queue. Without it an existing name is refused.
	Replace bool `json:"replace,omitempty"`
	// Mode is ModeDrain (the default) or ModeSpool.
	Mode string `json:"mode,omitempty"`
	// TimeoutMS bounds a drain, in milliseconds; zero means
	// DefaultDrainTimeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// Owner, in an unregister, removes the container only if it was
	// registered with this owner (registry.Container.Owner): the OCI hook
	// removes only what it registered.
	Owner string `json:"owner,omitempty"`
}

// Response is one answer line. Error is set when OK is false; otherwise
// the field of the operation is: Container (register, rules-push),
// Unregistered (unregister), Containers (containers), Status (status).
type Response struct {
	V            int               `json:"v"`
	OK           bool              `json:"ok"`
	Error        *Error            `json:"error,omitempty"`
	Container    *ContainerInfo    `json:"container,omitempty"`
	Containers   []ContainerInfo   `json:"containers,omitempty"`
	Unregistered *UnregisterResult `json:"unregistered,omitempty"`
	Status       *Status           `json:"status,omitempty"`
}
