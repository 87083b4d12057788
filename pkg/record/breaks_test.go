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

// FuzzReplaceBreaks: ReplaceBreaks turns exactly the bytes IsBreak names
// into spaces, as a byte-by-byte pass does; ReplaceLineBreaks the same but
// Separator.
func FuzzReplaceBreaks(f *testing.F) {
	f.Add([]byte("audit(1.002:3): a=\"x\ny\"\x00z\r\x1dw"))
	f.Add([]byte("\n\n\n\n\n\n\n\n\x1d\x1d\x1d\x1d\x1d\x1d\x1d\x1d\x1e\x1c\x0b\x0e\xff\x80"))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ref, line := bytes.Clone(data), bytes.Clone(data), bytes.Clone(data)
		record.ReplaceBreaks(got)
		replaceOnePass(ref)
		if !bytes.Equal(got, ref) {
			t.Fatalf("ReplaceBreaks(%q) = %q, want %q", data, got, ref)
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

// BenchmarkReplaceBreaks compares ReplaceBreaks (four bytes.IndexByte
// passes, vectorised) with one pass over the bytes (replaceOnePass), on
// records without a break (the usual case), with one, and on a hostile
// user message that is one break in eight bytes.
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
		}{{"indexbyte", record.ReplaceBreaks}, {"onepass", replaceOnePass}} {
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
