// Package record holds the audit record as the kernel sends it, and every
// text format auditd writes around it.
//
// A record is a type number and the text "audit(SEC.MSEC:SERIAL): fields".
// The package parses the header (Parse), gives lazy, allocation-free access
// to fields (Field, FieldSpan, Fields), parses the container chain of
// CONTAINER_ID records, and names record types as auditd prints them
// (TypeName, and the Type constants). The log line around a record,
// "[node=N ]type=NAME msg=DATA", is written by AppendLine and read by
// ParseLine, in one place for the host log, the copies, the listener and
// the remote sender; the daemon's own DAEMON_* records get their text from
// DaemonText.
//
// It is not a full interpreter of audit fields (see go-libaudit's auparse for
// that) and it does not group records into events (see package router).
package record
