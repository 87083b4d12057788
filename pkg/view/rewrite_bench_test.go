package view_test

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// BenchmarkRewrite translates one record of each common kind into a
// reused buffer; one op is one record.
func BenchmarkRewrite(b *testing.B) {
	for _, c := range rewriteCases[:3] {
		b.Run(c.name, func(b *testing.B) {
			n, s := newNS(b), view.NewSessions(0)
			n.at = make([]int64, 0, 64)
			data := []byte(c.in)
			var dst []byte
			b.ReportAllocs()
			for range b.N {
				n.at = n.at[:0]
				dst = view.Rewrite(dst[:0], c.typ, data, n, 1, s)
			}
			b.SetBytes(int64(len(data)))
		})
	}
}
