package record

import (
	"strconv"
	"strings"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// names holds auditd's name for every record type, "UNKNOWN[n]" for types it
// does not know; built once so that naming a record never allocates.
//
// The types the kernel patches add (CONTAINER_OP, CONTAINER_ID, NAMESPACE)
// are printed as auditd prints them, UNKNOWN[1020], UNKNOWN[1340] and
// UNKNOWN[1341]: libaudit does not know their names, and ausearch and
// auparse put a line whose type name they cannot read into an event of its
// own, so a "type=CONTAINER_ID" line would be cut off from its SYSCALL.
// TypeByName still takes the names (rules say "type: CONTAINER_ID").
var names = buildNames()

func buildNames() *[1 << 16]string {
	var t [1 << 16]string
	for i := range t {
		t[i] = "UNKNOWN[" + strconv.Itoa(i) + "]"
	}
	for i := range t {
		if n := auparse.AuditMessageType(i).String(); !strings.HasPrefix(n, "UNKNOWN[") {
			t[i] = n
		}
	}
	return &t
}

// TypeName returns the name auditd prints for a record type.
func TypeName(typ uint16) string { return names[typ] }

// TypeByName returns the record type called name ("SYSCALL", "UNKNOWN[1340]",
// or a decimal number).
func TypeByName(name string) (uint16, bool) {
	if n, err := strconv.ParseUint(name, 10, 16); err == nil {
		return uint16(n), true
	}
	switch name {
	case "CONTAINER_OP":
		return TypeContainerOp, true
	case "CONTAINER_ID":
		return TypeContainerID, true
	case "NAMESPACE":
		return TypeNamespace, true
	}
	t, err := auparse.GetAuditMessageType(name)
	if err != nil {
		return 0, false
	}
	return uint16(t), true
}

// Common record types.
const (
	TypeDaemonStart  = 1200
	TypeDaemonEnd    = 1201
	TypeDaemonAbort  = 1202
	TypeDaemonConfig = 1203
	TypeDaemonRotate = 1205
	TypeDaemonResume = 1206
	TypeDaemonErr    = 1209
	TypeSyscall      = 1300
	TypeEOE          = 1320
)

// UnsetUID is the auid of a task that never logged in.
const UnsetUID = ^uint32(0)
