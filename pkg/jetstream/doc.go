// Package jetstream carries audit records past one machine on NATS
// JetStream: a Publisher drains a queue to a subject (a host's complete log
// to audit.host.HOST, a container's copies to audit.tenant.TENANT.HOST), and
// a Consumer reads a tenant's subjects back from a durable consumer and
// writes them to an auditd-format log that ausearch reads.
//
// Delivery is at least once and, inside the stream's duplicate window,
// exactly once in the stream: a copy leaves its queue only after the stream
// acknowledged it, and every message carries a Nats-Msg-Id made of the host,
// the record's event (audit(SEC.MSEC:SERIAL)) and its index in the event,
// so a copy sent again after a lost ack is dropped by the stream as a
// duplicate. The Consumer acknowledges a message only after its line is
// written to the log; a crash between the two writes the line again.
//
// The package knows nothing of routing; the daemon gives each Publisher its
// queue. The server side (accounts, permissions, streams) is described in
// docs/jetstream.md.
package jetstream
