package view

import (
	"bytes"
	"strconv"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Namespaces answers for one container: how its pid and user namespaces
// show host values. Its methods are called on the router's per-record
// path: they must be quick and must not block.
type Namespaces interface {
	// Pid is host pid p as seen in the container's pid namespace at time
	// at (ns since the epoch, the event's stamp); 0 when not visible there.
	Pid(p uint32, at int64) uint32
	// UID and GID map a host (init_user_ns) id through the container's
	// user namespace; unmapped ids give Overflow (65534).
	UID(id uint32) uint32
	GID(id uint32) uint32
}

// Host is the host's own view: every id shows as itself.
var Host Namespaces = host{}

type host struct{}

func (host) Pid(p uint32, _ int64) uint32 { return p }
func (host) UID(id uint32) uint32         { return id }
func (host) GID(id uint32) uint32         { return id }

// Record types with special cases (include/uapi/linux/audit.h).
const (
	typeLogin        = 1006 // LOGIN: its ses= is a session begun
	typeConfigChange = 1305 // CONFIG_CHANGE: "audit_pid=NEW old=OLD"
	typeObjPID       = 1318 // OBJ_PID: every id printed with %d
	typeNetfilterCfg = 1325 // NETFILTER_CFG: starts with a name the user chose
)

type kind uint8

const (
	notID kind = iota
	pidID
	uidID
	gidID
	sesID
)

// oldBit is CONFIG_CHANGE's old= after audit_pid=, in the set of fields seen.
const oldBit = 1 << 31

// fieldKind is what a kernel-written field called name holds, and its bit
// in a record's set of id fields seen.
func fieldKind(name []byte) (kind, uint32) {
	// Every id field's name ends in d or s: most other names are passed
	// over by this one test.
	if len(name) < 3 || name[len(name)-1] != 'd' && name[len(name)-1] != 's' {
		return notID, 0
	}
	switch string(name) {
	case "pid":
		return pidID, 1 << 0
	case "ppid":
		return pidID, 1 << 1
	case "opid":
		return pidID, 1 << 2
	case "audit_pid":
		return pidID, 1 << 3
	case "uid":
		return uidID, 1 << 4
	case "euid":
		return uidID, 1 << 5
	case "suid":
		return uidID, 1 << 6
	case "fsuid":
		return uidID, 1 << 7
	case "auid":
		return uidID, 1 << 8
	case "ouid":
		return uidID, 1 << 9
	case "oauid":
		return uidID, 1 << 10
	case "old-auid":
		return uidID, 1 << 11
	case "frootid":
		return uidID, 1 << 12
	case "cap_frootid":
		return uidID, 1 << 13
	case "gid":
		return gidID, 1 << 14
	case "egid":
		return gidID, 1 << 15
	case "sgid":
		return gidID, 1 << 16
	case "fsgid":
		return gidID, 1 << 17
	case "ogid":
		return gidID, 1 << 18
	case "ses":
		return sesID, 1 << 19
	case "old-ses":
		return sesID, 1 << 20
	case "oses":
		return sesID, 1 << 21
	}
	return notID, 0
}

// Rewrite appends to dst the record data (a record's payload, "audit(...):
// text", or its whole log line as record.AppendLine writes it) with every
// id field the kernel wrote translated through ns, as seen at time at (ns since the epoch: the event's stamp). typ is the
// record's type. Sessions not in s become unset; a LOGIN record's ses= is
// first noted in s as begun. A nil s leaves sessions as they are; a nil ns
// appends data unchanged. See the package doc for the fields and for what
// is never translated. data is only read.
func Rewrite(dst []byte, typ uint16, data []byte, ns Namespaces, at int64, s *Sessions) []byte {
	if ns == nil {
		return append(dst, data...)
	}
	if typ == typeNetfilterCfg {
		return rewriteNetfilterCfg(dst, data, ns, at)
	}
	last := 0
	afterAuditPid := false
	var seen uint32 // the id fields met so far
	tr := translator{ns: ns, at: at, s: s}
	for f := record.NewFields(data); f.Next(); {
		name, v := f.Name(), f.Value()
		if len(v) > 0 && v[0] == '\'' && string(name) == "msg" {
			break // a user message's text, to the end
		}
		k, bit := fieldKind(name)
		if typ == typeConfigChange {
			if afterAuditPid && string(name) == "old" {
				k, bit = pidID, oldBit // "op=set audit_pid=NEW old=OLD"
			}
			afterAuditPid = string(name) == "audit_pid"
		}
		if k == notID || seen&bit != 0 {
			continue // the kernel writes each id field once: a second is text
		}
		seen |= bit
		if k == sesID && typ == typeLogin && string(name) == "ses" && s != nil {
			if id, _, ok := parseID(v); ok {
				s.Begin(id)
			}
		}
		off := f.Offset()
		dst = append(dst, data[last:off]...)
		dst = tr.appendID(dst, k, typ == typeObjPID, v)
		last = off + len(v)
	}
	return append(dst, data[last:]...)
}

// rewriteNetfilterCfg translates only the record's last pid=: the kernel
// writes "table=NAME family=... op=... pid=PID subj=... comm=...", and NAME
// (an nftables table's) is the user's, unescaped, spaces and all. What
// follows the pid is an LSM label and an escaped comm.
func rewriteNetfilterCfg(dst, data []byte, ns Namespaces, at int64) []byte {
	i := bytes.LastIndex(data, []byte(" pid="))
	if i < 0 {
		return append(dst, data...)
	}
	off := i + len(" pid=")
	end := off
	for end < len(data) && data[end] != ' ' {
		end++
	}
	dst = append(dst, data[:off]...)
	tr := translator{ns: ns, at: at}
	dst = tr.appendID(dst, pidID, false, data[off:end])
	return append(dst, data[end:]...)
}

// translator translates the ids of one record. It remembers the last
// uid and gid it translated: a task's uid, euid, suid and fsuid are most
// often one value, as are its gids.
type translator struct {
	ns   Namespaces
	at   int64
	s    *Sessions
	uid  [2]uint32 // host, translated
	gid  [2]uint32
	memo uint8 // 1: uid is set, 2: gid is set
}

// appendID appends the translation of v, an id of kind k. A value that is
// not a decimal id, or is Unset, or translates to itself is appended as it
// is. signed: the kernel prints the field with %d.
func (t *translator) appendID(dst []byte, k kind, signed bool, v []byte) []byte {
	id, neg, ok := parseID(v)
	if !ok || id == Unset {
		return append(dst, v...)
	}
	out := id
	switch k {
	case pidID:
		out = t.ns.Pid(id, t.at)
	case uidID:
		if t.memo&1 == 0 || t.uid[0] != id {
			t.uid, t.memo = [2]uint32{id, t.ns.UID(id)}, t.memo|1
		}
		out = t.uid[1]
	case gidID:
		if t.memo&2 == 0 || t.gid[0] != id {
			t.gid, t.memo = [2]uint32{id, t.ns.GID(id)}, t.memo|2
		}
		out = t.gid[1]
	case sesID:
		if t.s != nil && !t.s.Has(id) {
			out = Unset
		}
	}
	if out == id {
		return append(dst, v...)
	}
	if signed || neg {
		return strconv.AppendInt(dst, int64(int32(out)), 10)
	}
	return strconv.AppendUint(dst, uint64(out), 10)
}

// parseID reads a 32-bit id printed with %u, or with %d (neg: it had a
// minus sign).
func parseID(v []byte) (id uint32, neg, ok bool) {
	if len(v) > 0 && v[0] == '-' {
		neg, v = true, v[1:]
	}
	if len(v) == 0 || len(v) > 10 {
		return 0, false, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		n = n*10 + uint64(c-'0')
	}
	if neg {
		if n > 1<<31 {
			return 0, false, false
		}
		return uint32(-int64(n)), true, true
	}
	if n > 1<<32-1 {
		return 0, false, false
	}
	return uint32(n), false, true
}
