// Package record holds the audit record as the kernel sends it: a type number
// and the text "audit(SEC.MSEC:SERIAL): fields". It parses the header, gives
// lazy, allocation-free access to fields, parses the container chain of
// CONTAINER_ID records, and names record types as auditd prints them.
//
// It is not a full interpreter of audit fields (see go-libaudit's auparse for
// that) and it does not group records into events (see package router).
package record
