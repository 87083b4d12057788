// Package deliver runs the registered containers: for each, its bounded
// queue, the Target that drains the queue to where its tenant reads (a file
// on a volume, or a remote auditd), and its container-scoped kernel rules.
// It keeps the router's table of containers current as they come and go.
//
// The data flow is router → queue → Target. A Target is small (Run on a
// queue.Reader, Status, Close), so that a new kind of delivery is one type:
// File and Remote are the two built in.
//
// Containers is the lifecycle: Load at start, Register, Unregister (spool or
// drain) and PushRules while records flow, StopAll at shutdown. Everything
// it needs from outside comes through Options: the router, the registry
// store, the kernel's rule calls (KernelRules, nil on a kernel without the
// container-ID patches), and hooks for what the daemon attaches to a
// container (its scoped control socket). It is safe for concurrent use and
// tested with fakes of the kernel and of targets.
package deliver
