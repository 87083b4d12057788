package record_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// replaceOnePass is ReplaceBreaks written as one pass, eight bytes at a
// time: the reference FuzzReplaceBreaks holds ReplaceBreaks to, and what
// BenchmarkReplaceBreaks measures it against.
func replaceOnePass(b []byte) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	zero := func(y uint64) uint64 { return (y - lo) &^ y & hi }
	i := 0
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		if zero(x)|zero(x^('\n'*lo))|zero(x^('\r'*lo))|zero(x^(record.Separator*lo)) == 0 {
			continue
		}
		for j := i; j < i+8; j++ {
			if record.IsBreak(b[j]) {
				b[j] = ' '
			}
		}
	}
	for ; i < len(b); i++ {
		if record.IsBreak(b[i]) {
			b[i] = ' '
		}
	}
}

// replaceFourPasses is ReplaceBreaks as it was before (issue 18): one
// bytes.IndexByte pass per kind of break, a call per break found.
func replaceFourPasses(b []byte) {
	for _, c := range []byte{'\n', '\r', 0, record.Separator} {
		for rest := b; ; {
			i := bytes.IndexByte(rest, c)
			if i < 0 {
				break
			}
			rest[i] = ' '
			rest = rest[i+1:]
		}
	}
}

// FuzzReplaceBreaks: ReplaceBreaks turns exactly the bytes IsBreak names
// into spaces, as a byte-by-byte pass does; ReplaceLineBreaks the same but
// Separator.
func FuzzReplaceBreaks(f *testing.F) {
	f.Add([]byte("audit(1.002:3): a=\"x\ny\"\x00z\r\x1dw"))
	f.Add([]byte("\n\n\n\n\n\n\n\n\x1d\x1d\x1d\x1d\x1d\x1d\x1d\x1d\x1e\x1c\x0b\x0e\xff\x80"))
	// Past the dense threshold, for each kind and for all at once.
	for _, c := range []string{"\n", "\r", "\x00", "\x1d", "a\nb\rc\x00d\x1d"} {
		f.Add([]byte(strings.Repeat("x"+c, 15) + "y\x1d\r"))
		f.Add([]byte(strings.Repeat("x"+c, 40) + "y\x1d\r"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ref, line := bytes.Clone(data), bytes.Clone(data), bytes.Clone(data)
		record.ReplaceBreaks(got)
		replaceOnePass(ref)
		if !bytes.Equal(got, ref) {
			t.Fatalf("ReplaceBreaks(%q) = %q, want %q", data, got, ref)
		}
		before := bytes.Clone(data)
		replaceFourPasses(before)
		if !bytes.Equal(got, before) {
			t.Fatalf("ReplaceBreaks(%q) = %q; before issue 18: %q", data, got, before)
		}
		record.ReplaceLineBreaks(line)
		for i, c := range data {
			want := c
			if record.IsBreak(c) && c != record.Separator {
				want = ' '
			}
			if line[i] != want {
				t.Fatalf("ReplaceLineBreaks(%q)[%d] = %q, want %q", data, i, line[i], want)
			}
		}
	})
}

// BenchmarkReplaceBreaks compares ReplaceBreaks ("after") with the four
// bytes.IndexByte passes it was ("before") and with one pass over the
// bytes (replaceOnePass), on records without a break (the usual case),
// with one, and on a hostile user message that is one break in two bytes.
func BenchmarkReplaceBreaks(b *testing.B) {
	plain := "audit(1.002:3): arch=c000003e syscall=59 success=yes exit=0 a0=55 "
	for _, in := range []struct {
		name string
		data []byte
	}{
		{"plain-256", []byte(strings.Repeat(plain, 4)[:256])},
		{"plain-8192", []byte(strings.Repeat(plain, 130)[:8192])},
		{"one-break-256", []byte(strings.Repeat(plain, 4)[:128] + "\n" + strings.Repeat(plain, 4)[:127])},
		{"hostile-8192", []byte(strings.Repeat("a\nb\rc\x00d\x1d", 1024))},
	} {
		buf := make([]byte, len(in.data))
		for _, f := range []struct {
			name string
			fn   func([]byte)
		}{{"before", replaceFourPasses}, {"after", record.ReplaceBreaks}, {"onepass", replaceOnePass}} {
			b.Run(in.name+"/"+f.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(buf)))
				for i := 0; i < b.N; i++ {
					copy(buf, in.data)
					f.fn(buf)
				}
			})
		}
	}
}
