package rules

import (
	"bytes"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// findField returns what record.Field(text, name) returns, usually much
// faster. It searches for the first " name=" (or "name=" at the start) with
// bytes.IndexByte on a rare byte of the name instead of reading every field
// before it. Such a match is the field record.Field finds unless a
// double-quoted value before it holds a space (the kernel never writes one:
// it hex-encodes such strings; user messages may): then it asks record.Field.
// name must be non-empty and hold no space, '=' or '"' (the compiler checks).
func findField(text []byte, name string, anchor int) ([]byte, bool) {
	p, ok := candidate(text, name, anchor)
	if !ok {
		return nil, false
	}
	if quotedSpace(text, 0, p) {
		return record.Field(text, name)
	}
	return value(text, p+len(name)+1), true
}

// candidate returns the offset of the first " name=" (past its space) or
// leading "name=" in text, looking for name[anchor] first. record.Field
// finds no field called name when there is none.
func candidate(text []byte, name string, anchor int) (int, bool) {
	c := name[anchor]
	for from := anchor; from < len(text); {
		j := bytes.IndexByte(text[from:], c)
		if j < 0 {
			return 0, false
		}
		s := from + j - anchor
		from += j + 1
		if fieldAt(text, s, name) {
			return s, true
		}
	}
	return 0, false
}

// fieldAt reports whether "name=" starts at s, after a space or at the
// start of text.
func fieldAt(text []byte, s int, name string) bool {
	end := s + len(name)
	if end >= len(text) || text[end] != '=' || s > 0 && text[s-1] != ' ' {
		return false
	}
	for k := 0; k < len(name); k++ { // names are short: no call to memequal
		if text[s+k] != name[k] {
			return false
		}
	}
	return true
}

// value returns the value that starts at i, as record.Field delimits it.
func value(text []byte, i int) []byte {
	start := i
	if i < len(text) && text[i] == '"' {
		j := bytes.IndexByte(text[i+1:], '"')
		if j < 0 {
			return text[start:]
		}
		i += j + 2
	}
	for i < len(text) && text[i] != ' ' {
		i++
	}
	return text[start:i]
}

// quotedSpace reports whether a double-quoted value that starts in
// text[from:to], as record.Field sees one, contains a space. from must not be
// inside a quoted value.
func quotedSpace(text []byte, from, to int) bool {
	for i := from; i < to; {
		j := indexQuote(text[i:to])
		if j < 0 {
			return false
		}
		q := i + j
		i = q + 1
		if !valueStart(text, q) {
			continue
		}
		for ; i < len(text) && text[i] != '"'; i++ {
			if text[i] == ' ' {
				return true
			}
		}
		if i == len(text) {
			return false
		}
		i++
	}
	return false
}

// indexQuote is bytes.IndexByte(b, '"'), without the call for short b.
func indexQuote(b []byte) int {
	if len(b) > 16 {
		return bytes.IndexByte(b, '"')
	}
	for i, c := range b {
		if c == '"' {
			return i
		}
	}
	return -1
}

// valueStart reports whether the quote at q opens a field's value: it
// follows the first '=' of a field, which follows a space or the start.
func valueStart(text []byte, q int) bool {
	if q == 0 || text[q-1] != '=' {
		return false
	}
	for k := q - 2; k >= 0; k-- {
		switch text[k] {
		case ' ':
			return true
		case '=':
			return false
		}
	}
	return true
}

// common lists the bytes of audit records, most frequent first: hex digits
// of values, separators, then letters as field names use them. Bytes not
// listed are rarer still.
const common = "0123456789abcdef= \"sitnruomlpgy_hxwkvjqz"

// anchorOf returns the index of the rarest byte of name, the one to search
// for. Later indexes win ties: names often share their start.
func anchorOf(name string) int {
	best, bestRank := 0, len(common)+1
	for i := 0; i < len(name); i++ {
		r := 0
		if k := strings.IndexByte(common, name[i]); k >= 0 {
			r = len(common) - k
		}
		if r <= bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

// decoded is a value of a field the kernel writes as an untrusted string
// (exe, name, key, ...): in double quotes, as hex when it holds a quote,
// space or control character, or (null) when absent.
type decoded struct {
	b   []byte
	hex bool // b is the hex form
}

func decodeValue(v []byte) (decoded, bool) {
	switch {
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		return decoded{b: v[1 : len(v)-1]}, true
	case string(v) == "(null)" || len(v) == 0:
		return decoded{}, false
	case isHex(v):
		return decoded{b: v, hex: true}, true
	}
	return decoded{b: v}, true
}

func isHex(v []byte) bool {
	if len(v)%2 != 0 {
		return false
	}
	for _, c := range v {
		if unhex(c) > 15 {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return 255
}

// hexByte returns the i-th decoded byte of the hex string h.
func hexByte(h []byte, i int) byte { return unhex(h[2*i])<<4 | unhex(h[2*i+1]) }

// decodeHex appends the bytes of the hex string h to dst.
func decodeHex(dst, h []byte) []byte {
	for i := 0; i < len(h)/2; i++ {
		dst = append(dst, hexByte(h, i))
	}
	return dst
}
