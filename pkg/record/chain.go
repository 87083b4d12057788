package record

import (
	"errors"
	"fmt"
)

// Unset is the contid of a task that is in no container (2^64-1). Records
// print it as -1.
const Unset = ^uint64(0)

// ErrChain is matched (errors.Is) by every chain parsing error.
var ErrChain = errors.New("malformed container chain")

// ChainError says what is wrong with a chain and at which byte.
type ChainError struct {
	Offset int
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("malformed container chain at byte %d: %s", e.Offset, e.Reason)
}

// Is reports whether target is ErrChain.
func (e *ChainError) Is(target error) bool { return target == ErrChain }

// ParseChain parses a chain such as "42,^7,^1" (innermost first) and appends
// the contids to dst, which it returns. "-1" alone is the unset chain and
// appends nothing. It does not allocate when dst has room.
func ParseChain(dst []uint64, b []byte) ([]uint64, error) {
	if string(b) == "-1" {
		return dst, nil
	}
	if len(b) == 0 {
		return dst, &ChainError{0, "empty"}
	}
	for i, first := 0, true; ; first = false {
		if !first {
			if i >= len(b) || b[i] != '^' {
				return dst, &ChainError{i, `parent id must start with "^"`}
			}
			i++
		}
		v, n, ok := parseUint(b[i:])
		if !ok {
			return dst, &ChainError{i, "not a decimal u64"}
		}
		if v == Unset {
			return dst, &ChainError{i, "unset id inside a chain"}
		}
		dst = append(dst, v)
		i += n
		if i == len(b) {
			return dst, nil
		}
		if b[i] != ',' {
			return dst, &ChainError{i, `expected ","`}
		}
		i++
	}
}

// AppendChain appends the text form of chain ("42,^7,^1", or "-1" when empty).
func AppendChain(dst []byte, chain []uint64) []byte {
	if len(chain) == 0 {
		return append(dst, "-1"...)
	}
	for i, id := range chain {
		if i > 0 {
			dst = append(dst, ",^"...)
		}
		dst = appendUint(dst, id)
	}
	return dst
}

// Chain returns the chain of a CONTAINER_ID record's contid= field, appended
// to dst.
func (r *Record) Chain(dst []uint64) ([]uint64, error) {
	v, ok := r.Field("contid")
	if !ok {
		return dst, &ChainError{0, "no contid= field"}
	}
	return ParseChain(dst, v)
}

func appendUint(dst []byte, v uint64) []byte {
	var buf [20]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return append(dst, buf[i:]...)
}

// SplitChains returns the first chain of a list of chains such as
// "600,^1,601,^1" (a netfilter record's CONTAINER_ID lists every chain
// using the network namespace; an id without "^" starts a new chain) and
// the rest of the list, "" when it was the last. A single chain is a list
// of one. It does not parse the chain.
func SplitChains(b []byte) (first, rest []byte) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == ',' && b[i+1] != '^' {
			return b[:i], b[i+1:]
		}
	}
	return b, nil
}
