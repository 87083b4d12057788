package record

import (
	"bytes"
	"errors"
	"fmt"
)

// Record is one audit record. Its byte slices point into the buffer it was
// parsed from; Clone makes a copy that owns its memory.
type Record struct {
	// Type is the kernel's message type, such as 1300 for SYSCALL.
	Type uint16
	// Sec and Msec are the event time, Serial the event serial number; all
	// records of one event share them.
	Sec    uint64
	Msec   uint32
	Serial uint64
	// Data is the payload as the kernel sent it, "audit(...): text", with
	// trailing NULs and newlines removed.
	Data []byte
	// Text is the part of Data after the header's ": ".
	Text []byte
}

// ErrHeader is matched (errors.Is) by every header parsing error.
var ErrHeader = errors.New("malformed audit record header")

// HeaderError says what is wrong with a record's header and where.
type HeaderError struct {
	Offset int
	Reason string
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("malformed audit record header at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrHeader.
func (e *HeaderError) Is(target error) bool { return target == ErrHeader }

// Parse parses data, the payload of one kernel audit message, into r. It does
// not allocate; r's slices point into data. On error r.Data and r.Type are
// still set so that the caller can log the record unchanged.
func Parse(r *Record, typ uint16, data []byte) error {
	data = trimTail(data)
	*r = Record{Type: typ, Data: data}
	const prefix = "audit("
	if !bytes.HasPrefix(data, []byte(prefix)) {
		return &HeaderError{0, `does not start with "audit("`}
	}
	i := len(prefix)
	sec, n, ok := parseUint(data[i:])
	if !ok {
		return &HeaderError{i, "bad seconds"}
	}
	i += n
	if i >= len(data) || data[i] != '.' {
		return &HeaderError{i, `missing "." after seconds`}
	}
	i++
	msec, n, ok := parseUint(data[i:])
	if !ok || msec > 999 {
		return &HeaderError{i, "bad milliseconds"}
	}
	i += n
	if i >= len(data) || data[i] != ':' {
		return &HeaderError{i, `missing ":" before serial`}
	}
	i++
	serial, n, ok := parseUint(data[i:])
	if !ok {
		return &HeaderError{i, "bad serial"}
	}
	i += n
	if !bytes.HasPrefix(data[i:], []byte("):")) {
		return &HeaderError{i, `missing "):" after serial`}
	}
	i += 2
	if i < len(data) && data[i] == ' ' {
		i++
	}
	r.Sec, r.Msec, r.Serial, r.Text = sec, uint32(msec), serial, data[i:]
	return nil
}

// Clone returns a copy of r that owns its memory.
func (r *Record) Clone() Record {
	c := *r
	c.Data = bytes.Clone(r.Data)
	c.Text = c.Data[len(c.Data)-len(r.Text):]
	return c
}

// Field returns the raw value of the first field called name in the record's
// text, quotes included, and whether it was found. It does not allocate.
func (r *Record) Field(name string) ([]byte, bool) {
	return Field(r.Text, name)
}

// Field finds name=value in text, a space-separated list of fields, and
// returns the raw value (quotes included). Values in double quotes may
// contain spaces.
func Field(text []byte, name string) ([]byte, bool) {
	start, end, ok := FieldSpan(text, name)
	return text[start:end], ok
}

// FieldSpan is Field giving the value's place in text: text[start:end].
// It reads fields as nextField does, written out in one loop: it runs for
// every field the router and the rules look up.
func FieldSpan(text []byte, name string) (start, end int, ok bool) {
	for i := 0; i < len(text); {
		for i < len(text) && text[i] == ' ' {
			i++
		}
		ks := i
		for i < len(text) && text[i] != '=' && text[i] != ' ' {
			i++
		}
		if i >= len(text) || text[i] != '=' {
			continue
		}
		key := text[ks:i]
		i++
		start = i
		if i < len(text) && text[i] == '"' {
			j := bytes.IndexByte(text[i+1:], '"')
			if j < 0 {
				i = len(text)
			} else {
				i += j + 2
			}
		}
		for i < len(text) && text[i] != ' ' {
			i++
		}
		if string(key) == name {
			return start, i, true
		}
	}
	return 0, 0, false
}

// nextField reads the field that starts at or after text[i] (after
// spaces): its name is text[ks:ke] and its value text[vs:next]. ke < 0
// when what it read was not a name=value field (a word without "=").
func nextField(text []byte, i int) (ks, ke, vs, next int) {
	for i < len(text) && text[i] == ' ' {
		i++
	}
	ks = i
	for i < len(text) && text[i] != '=' && text[i] != ' ' {
		i++
	}
	if i >= len(text) || text[i] != '=' {
		return ks, -1, i, i
	}
	ke = i
	i++
	vs = i
	if i < len(text) && text[i] == '"' {
		j := bytes.IndexByte(text[i+1:], '"')
		if j < 0 {
			i = len(text)
		} else {
			i += j + 2
		}
	}
	for i < len(text) && text[i] != ' ' {
		i++
	}
	return ks, ke, vs, i
}

// Fields walks the name=value fields of a record's text in order, without
// allocating:
//
//	for f := record.NewFields(text); f.Next(); {
//		use(f.Name(), f.Value(), f.Offset())
//	}
type Fields struct {
	text           []byte
	ks, ke, vs, ve int
}

// NewFields returns a walk over the fields of text.
func NewFields(text []byte) Fields { return Fields{text: text} }

// Fields returns a walk over the fields of the record's text.
func (r *Record) Fields() Fields { return NewFields(r.Text) }

// Next moves to the next field and reports whether there is one.
func (f *Fields) Next() bool {
	for f.ve < len(f.text) {
		f.ks, f.ke, f.vs, f.ve = nextField(f.text, f.ve)
		if f.ke >= 0 {
			return true
		}
	}
	return false
}

// Name is the current field's name.
func (f *Fields) Name() []byte { return f.text[f.ks:f.ke] }

// Value is the current field's raw value, quotes included.
func (f *Fields) Value() []byte { return f.text[f.vs:f.ve] }

// Offset is the byte offset of the current field's value in the text.
func (f *Fields) Offset() int { return f.vs }

// Unquote strips one pair of surrounding double quotes, if present.
func Unquote(v []byte) []byte {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return v[1 : len(v)-1]
	}
	return v
}

func trimTail(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == 0 || b[len(b)-1] == '\n') {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint parses leading decimal digits. It fails on no digits and on
// overflow of uint64.
func parseUint(b []byte) (v uint64, n int, ok bool) {
	for ; n < len(b); n++ {
		d := b[n] - '0'
		if d > 9 {
			break
		}
		// 19 digits always fit; check for overflow only after that.
		if n >= 19 && v > (1<<64-1-uint64(d))/10 {
			return 0, n, false
		}
		v = v*10 + uint64(d)
	}
	return v, n, n > 0
}
