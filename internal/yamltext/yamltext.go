// Package yamltext holds what the YAML readers (the daemon's config, the
// filter rules) share about YAML's text itself.
package yamltext

import "unicode/utf8"

// BadByte returns the offset of the first byte YAML does not allow: invalid
// UTF-8, or a control character other than tab, newline and return. It
// returns -1 when every byte is allowed.
func BadByte(src []byte) int {
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		switch {
		case r == utf8.RuneError && n == 1,
			r < 0x20 && r != '\t' && r != '\n' && r != '\r',
			r >= 0x7f && r <= 0x9f && r != 0x85,
			r == 0xfffe || r == 0xffff:
			return i
		}
		i += n
	}
	return -1
}
