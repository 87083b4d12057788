package rules

import (
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Scan holds what matching has read from one event, so that the programs of
// all the containers on the event's chain read each field only once. The
// zero value holds no event; Reset it for each event. A Scan is not safe for
// concurrent use; keep one per goroutine.
type Scan struct {
	v view
}

// Reset makes s hold nothing read from ev yet. ev must not change while s
// holds it.
func (s *Scan) Reset(ev *record.Event) { s.v = view{ev: ev} }

// Fields of the event's main record that conditions read; the view looks
// each up at most once per event.
const (
	fArch = iota
	fSyscall
	fSuccess
	fExit
	fUID
	fAUID
	fEUID
	fExe
	fKey
	nFields
)

var fieldNames = [nFields]string{"arch", "syscall", "success", "exit", "uid", "auid", "euid", "exe", "key"}

var fieldAnchors = func() (a [nFields]int) {
	for i, n := range fieldNames {
		a[i] = anchorOf(n)
	}
	return a
}()

func fieldIndex(name string) int {
	for i, n := range fieldNames {
		if n == name {
			return i
		}
	}
	panic("rules: no field " + name)
}

// view caches what the conditions of one Match call read from the event.
// It lives on Match's stack.
type view struct {
	ev       *record.Event
	main     int    // index of the SYSCALL record, else 0; -1 when no records
	mainSet  bool   // main is known
	looked   uint16 // fields of the main record looked up
	found    uint16 // fields of the main record found; their values in vals
	vals     [nFields][]byte
	parsed   uint16 // fields whose number is in nums (if numOK)
	numOK    uint16
	nums     [nFields]int64
	typesSet bool
	types    uint64 // bit t%64 for each record type t of the event
	// The main record has no double-quoted value with a space before
	// mainClean, or has one (mainDirty).
	mainClean int
	mainDirty bool
}

// mainRecord returns the index of the record that the fixed conditions
// read, or -1.
func (v *view) mainRecord() int {
	if !v.mainSet {
		v.mainSet = true
		v.main = -1
		recs := v.ev.Records
		for i := range recs {
			if recs[i].Type == record.TypeSyscall {
				v.main = i
				break
			}
		}
		if v.main < 0 && len(recs) > 0 {
			v.main = 0
		}
	}
	return v.main
}

// find returns record.Field(v.ev.Records[i].Text, name), as findField
// does. For the main record, read by many conditions, it remembers how far
// the text is known to have no double-quoted value with a space.
func (v *view) find(i int, name string, anchor int) ([]byte, bool) {
	if i != v.mainRecord() {
		return findField(v.ev.Records[i].Text, name, anchor)
	}
	text := v.ev.Records[i].Text
	p, ok := candidate(text, name, anchor)
	if !ok {
		return nil, false
	}
	if v.mainDirty || p > v.mainClean && quotedSpace(text, v.mainClean, p) {
		v.mainDirty = true
		return record.Field(text, name)
	}
	v.mainClean = max(v.mainClean, p)
	return value(text, p+len(name)+1), true
}

// field returns the raw value of field f of the main record, found as
// find finds it, the first time it is asked for.
func (v *view) field(f int) ([]byte, bool) {
	bit := uint16(1) << f
	if v.looked&bit == 0 {
		v.looked |= bit
		if i := v.mainRecord(); i >= 0 {
			var ok bool
			if v.vals[f], ok = v.find(i, fieldNames[f], fieldAnchors[f]); ok {
				v.found |= bit
			}
		}
	}
	return v.vals[f], v.found&bit != 0
}

// arch returns the main record's arch= value.
func (v *view) arch() (uint32, bool) {
	const bit = 1 << fArch
	if v.parsed&bit == 0 {
		v.parsed |= bit
		if b, ok := v.field(fArch); ok {
			var a uint32
			if a, ok = parseHex32(b); ok {
				v.nums[fArch] = int64(a)
				v.numOK |= bit
			}
		}
	}
	return uint32(v.nums[fArch]), v.numOK&bit != 0
}

// number returns field f of the main record as a decimal number.
func (v *view) number(f int) (int64, bool) {
	bit := uint16(1) << f
	if v.parsed&bit == 0 {
		v.parsed |= bit
		if b, ok := v.field(f); ok {
			if v.nums[f], ok = parseInt(b); ok {
				v.numOK |= bit
			}
		}
	}
	return v.nums[f], v.numOK&bit != 0
}

// typeBits returns the event's types folded into 64 bits, so that most
// type conditions are decided without a look at the records.
func (v *view) typeBits() uint64 {
	if !v.typesSet {
		v.typesSet = true
		for i := range v.ev.Records {
			v.types |= 1 << (v.ev.Records[i].Type % 64)
		}
	}
	return v.types
}

// parseInt parses a decimal int64 with an optional minus sign.
func parseInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n < 0 { // 19 digits can overflow
		return 0, false
	}
	if neg {
		return -n, true
	}
	return n, true
}

// parseHex32 parses the arch= value, such as c000003e.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var n uint32
	for _, c := range b {
		d := unhex(c)
		if d > 15 {
			return 0, false
		}
		n = n<<4 | uint32(d)
	}
	return n, true
}
