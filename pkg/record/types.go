package record

import (
	"bytes"
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

// byName maps the names in names (other than UNKNOWN[n]) to their types.
var byName = func() map[string]uint16 {
	m := map[string]uint16{}
	for i, n := range names {
		if !strings.HasPrefix(n, "UNKNOWN[") {
			m[n] = uint16(i)
		}
	}
	return m
}()

// typeByLineName is TypeByName without allocating for the names a log
// line has: those TypeName gives, and UNKNOWN[n].
func typeByLineName(name []byte) (uint16, bool) {
	if t, ok := byName[string(name)]; ok {
		return t, true
	}
	if n, ok := bytes.CutPrefix(name, []byte("UNKNOWN[")); ok && len(n) > 1 && n[len(n)-1] == ']' {
		if v, used, ok := parseUint(n[:len(n)-1]); ok && used == len(n)-1 && v <= 0xffff {
			return uint16(v), true
		}
	}
	return TypeByName(string(name))
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

// Record types the daemon names, with the kernel's values (include/uapi/
// linux/audit.h). TestTypeConstants checks that they are distinct and that
// libaudit gives them these names.
const (
	TypeTrustedApp   = 1121 // TRUSTED_APP: a user-space message; the daemon's own notes to the kernel
	TypeDaemonStart  = 1200 // DAEMON_START
	TypeDaemonEnd    = 1201 // DAEMON_END
	TypeDaemonAbort  = 1202 // DAEMON_ABORT
	TypeDaemonConfig = 1203 // DAEMON_CONFIG
	TypeDaemonRotate = 1205 // DAEMON_ROTATE
	TypeDaemonResume = 1206 // DAEMON_RESUME
	TypeDaemonErr    = 1209 // DAEMON_ERR
	TypeSyscall      = 1300 // SYSCALL
	TypePath         = 1302 // PATH
	TypeObjPID       = 1318 // OBJ_PID: a signalled or traced task
	TypeEOE          = 1320 // EOE: end of a multi-record event
	TypeReplace      = 1329 // REPLACE: the kernel's liveness probe of the registered daemon; a binary pid, not a record
)

// Record types of the container-ID kernel patches (see DESIGN.md). Their
// names are printed UNKNOWN[N] (see TypeName).
const (
	TypeContainerOp = 1020 // CONTAINER_OP: contid set and drop
	TypeContainerID = 1340 // CONTAINER_ID: auxiliary record with the chain
	TypeNamespace   = 1341 // NAMESPACE: namespace lifecycle
)

// UnsetUID is the auid of a task that never logged in.
const UnsetUID = ^uint32(0)
