package view

import (
	"bytes"
	"strconv"
	"sync"

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
	typeSyscall      = 1300 // SYSCALL: ses= is the last id the kernel writes
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
// is never translated. data is only read. To translate one record for
// several containers, Find its fields once and Translate each copy.
func Rewrite(dst []byte, typ uint16, data []byte, ns Namespaces, at int64, s *Sessions) []byte {
	if ns == nil {
		return append(dst, data...)
	}
	f := fieldsPool.Get().(*Fields)
	defer fieldsPool.Put(f)
	f.Find(typ, data)
	out, changed := f.Translate(dst, ns, at, s)
	f.data = nil
	if changed {
		return out
	}
	return append(dst, data...)
}

// fieldsPool keeps Rewrite's Fields, so that it allocates nothing.
var fieldsPool = sync.Pool{New: func() any { return new(Fields) }}

// Fields is the id fields of one record, found once (Find) and translated
// for each container a copy of it goes to (Translate): the walk over the
// record's fields, most of a translation's cost, is made once per record,
// not once per copy. The zero Fields is ready for Find; reused, it does
// not allocate once it has grown to the records' number of id fields.
type Fields struct {
	data []byte
	ids  []idField
}

// idField is one id field's decimal value, parsed, in data[start:end].
type idField struct {
	start, end int32
	id         uint32
	k          kind
	signed     bool // print with %d: OBJ_PID's, or written negative
	login      bool // LOGIN's ses=: a session begun
}

// Find finds the id fields of record data of type typ (see Rewrite for
// what data is), forgetting those found before. data is kept, not copied:
// it must not change until the last Translate.
func (f *Fields) Find(typ uint16, data []byte) {
	f.data, f.ids = data, f.ids[:0]
	if noIDs(typ) {
		return
	}
	if typ == typeNetfilterCfg {
		f.findNetfilterCfg(data)
		return
	}
	afterAuditPid := false
	var seen uint32 // the id fields met so far
	for w := record.NewFields(data); w.Next(); {
		name, v := w.Name(), w.Value()
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
		f.add(w.Offset(), v, k, typ == typeObjPID, k == sesID && typ == typeLogin && string(name) == "ses")
		if typ == typeSyscall && k == sesID {
			break // SYSCALL's last id: comm, exe, subj and key follow
		}
	}
}

// noIDs reports whether the kernel writes records of type typ with no id
// field: each of their values is a number it chose, quoted or hex (no
// name=value inside), or nothing. User space can log only types
// 1100-1199 and 2100-2999, so these come from the kernel alone, and they
// are not walked: most of an event's records are of these types.
func noIDs(typ uint16) bool {
	switch typ {
	case 1306, // SOCKADDR: saddr=HEX
		1307, // CWD: cwd="..." or hex
		1309, // EXECVE: argc=N a0="..." (quoted or hex, a0_len=N, a0[0]=...)
		1320, // EOE: empty
		1327: // PROCTITLE: proctitle="..." or hex
		return true
	}
	return false
}

// add keeps the field whose value v starts at off, when it is a decimal
// id other than Unset: any other value is copied as it is.
func (f *Fields) add(off int, v []byte, k kind, signed, login bool) {
	id, neg, ok := parseID(v)
	if !ok || id == Unset {
		return
	}
	f.ids = append(f.ids, idField{start: int32(off), end: int32(off + len(v)), id: id, k: k, signed: signed || neg, login: login})
}

// findNetfilterCfg finds only the record's last pid=: the kernel
// writes "table=NAME family=... op=... pid=PID subj=... comm=...", and NAME
// (an nftables table's) is the user's, unescaped, spaces and all. What
// follows the pid is an LSM label and an escaped comm.
func (f *Fields) findNetfilterCfg(data []byte) {
	i := bytes.LastIndex(data, []byte(" pid="))
	if i < 0 {
		return
	}
	off := i + len(" pid=")
	end := off
	for end < len(data) && data[end] != ' ' {
		end++
	}
	f.add(off, data[off:end], pidID, false, false)
}

// Translate appends to dst the record Find was given, translated through
// ns as seen at time at with sessions s (as Rewrite), and reports whether
// any value changed. When none did, it appends nothing: the record's own
// bytes are its translation. A LOGIN record's ses= is noted in s as
// begun, as Rewrite does.
func (f *Fields) Translate(dst []byte, ns Namespaces, at int64, s *Sessions) ([]byte, bool) {
	tr := translator{ns: ns, at: at, s: s}
	last, changed := 0, false
	for i := range f.ids {
		x := &f.ids[i]
		if x.login && s != nil {
			s.Begin(x.id)
		}
		out := tr.translate(x.k, x.id)
		if out == x.id {
			continue // keeps its exact bytes
		}
		changed = true
		dst = append(dst, f.data[last:x.start]...)
		if x.signed {
			dst = strconv.AppendInt(dst, int64(int32(out)), 10)
		} else {
			dst = strconv.AppendUint(dst, uint64(out), 10)
		}
		last = int(x.end)
	}
	if !changed {
		return dst, false
	}
	return append(dst, f.data[last:]...), true
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

// translate returns the translation of id, an id of kind k (not Unset).
func (t *translator) translate(k kind, id uint32) uint32 {
	switch k {
	case pidID:
		return t.ns.Pid(id, t.at)
	case uidID:
		if t.memo&1 == 0 || t.uid[0] != id {
			t.uid, t.memo = [2]uint32{id, t.ns.UID(id)}, t.memo|1
		}
		return t.uid[1]
	case gidID:
		if t.memo&2 == 0 || t.gid[0] != id {
			t.gid, t.memo = [2]uint32{id, t.ns.GID(id)}, t.memo|2
		}
		return t.gid[1]
	case sesID:
		if t.s != nil && !t.s.Has(id) {
			return Unset
		}
	}
	return id
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
