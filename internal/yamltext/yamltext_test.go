package yamltext

import "testing"

func TestBadByte(t *testing.T) {
	for src, want := range map[string]int{
		"a: 1\n\tb: 2\r\n": -1,
		"a: é\n":           -1,
		"a: \x00":          3,
		"ab\xff":           2,
		"a: \u0085 \u0086": 6,
		"\ufffe":           0,
		"a\x1b[0m":         1,
	} {
		if got := BadByte([]byte(src)); got != want {
			t.Errorf("BadByte(%q) = %d, want %d", src, got, want)
		}
	}
}
