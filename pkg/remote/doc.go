// Package remote speaks auditd's remote-logging protocol (the "managed"
// format of audisp-remote and auditd's tcp_listen_port) in both
// directions.
//
// # Wire format
//
// Every frame starts with a 16-byte little-endian header, followed by
// Length bytes of payload:
//
//	offset size field
//	0      4    magic, always 0xff0000fe
//	4      1    header version, always 0
//	5      1    message version, always 0
//	6      4    type: 0 message, 1 heartbeat; replies have 0x40000000 set
//	10     2    payload length
//	12     4    sequence number, echoed in the reply
//
// A message payload is one audit record line without its newline. Replies
// are ACK (0x40000000), ENDING (0x40000001, the server is going down),
// disk low (0x50000001, written but space is low), disk full (0x60000001)
// and disk error (0x60000002); the last two mean the record was not
// written. A reply may carry a short text payload ("disk full").
// auditd 3.0.9 reads a frame into a buffer of 8970 bytes, so a payload
// must stay at or below 8954 bytes; [DefaultMaxPayload] keeps a margin.
//
// # Sender
//
// [Sender] drains a [queue.Reader] to one receiver (an unmodified auditd
// with tcp_listen_port, or auditd-ns in listener mode). It keeps a window
// of frames in flight, commits a queue item only after the receiver
// acknowledged it, rewinds and reconnects with exponential backoff, and
// pauses when the receiver reports a full disk, a disk error or that it is
// ending. It never sends what auditd would mishandle: EOE records are
// dropped, newlines, carriage returns, NUL and 0x1d bytes inside a record
// are replaced by '?', and an oversize record is cut with a visible
// " truncated=N" field (N is the original length). A queue item with
// Lost > 0 is preceded by a notice record, see [LostNotice], and one
// with Unrouted by another, see [UnroutedNotice].
//
// # Listener
//
// [Listener] accepts the same protocol from audisp-remote or from another
// auditd-ns. It hands every record line to a callback that must return
// only once the line is durably written, and only then acknowledges it.
// It enforces a maximum payload size, a maximum number of connections and
// an allow list of peer networks (empty refuses everyone); a frame must
// arrive whole within the frame timeout of its first byte and a silent
// peer is closed after the idle timeout, so slow peers cannot keep the
// slots; a peer that sends a bad frame is disconnected with a logged
// reason, and the server keeps running. Peers are known only by their
// address unless [Listener.TLS] is set: [ServerTLS] builds a configuration
// that admits only peers with a client certificate from a given CA.
//
// # Interoperability
//
// Checked against auditd and audisp-remote 3.0.9 (Debian bookworm) by the
// TestIntegration tests:
//
//   - A tenant auditd needs local_events = no and tcp_listen_port; with
//     local_events = no it never registers with the kernel (run it with
//     -s nochange, and -n rather than -f: in the foreground it logs to
//     stdout instead of log_file). tcp_client_ports is unset by default,
//     which admits any source port; use_libwrap = yes consults
//     /etc/hosts.allow and hosts.deny; tcp_max_per_addr = 1 admits one
//     connection per address, so a reconnect can be refused until auditd
//     has seen the old one close (the Sender backs off and retries).
//   - auditd acknowledges a record once fprintf has buffered it; a disk
//     that fills mid-line leaves a partial line, to which the retried
//     record is appended. It replies disk low while space_left is
//     crossed (the record was written), and sends ENDING with sequence 0
//     to every client when it shuts down.
//   - audisp-remote takes no options and reads
//     /etc/audit/audisp-remote.conf (remote_server, port, format =
//     managed). It sends one record per round trip, each payload ending
//     in a newline, which the Listener drops as auditd does.
//
// This package knows nothing of routing, rules or containers; dialing is
// pluggable ([Sender.Dial]) so that callers can connect from inside a
// network namespace.
package remote
