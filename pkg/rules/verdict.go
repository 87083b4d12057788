package rules

import (
	"iter"
	"slices"
	"strings"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// MaxStrip is the most record types one rule can strip.
const MaxStrip = 15

// TypeSet is a small set of record types, such as the types a kept event
// leaves out. It is a value (no pointers), so copying and comparing it with
// == is cheap. The zero value is the empty set.
type TypeSet struct {
	types [MaxStrip]uint16 // sorted, the first n are used
	n     uint8
}

// NewTypeSet returns the set of the given types. It returns false when there
// are more than MaxStrip distinct types.
func NewTypeSet(types ...uint16) (TypeSet, bool) {
	var s TypeSet
	for _, t := range types {
		if s.Has(t) {
			continue
		}
		if int(s.n) == MaxStrip {
			return TypeSet{}, false
		}
		s.types[s.n] = t
		s.n++
	}
	slices.Sort(s.types[:s.n])
	return s, true
}

// Has reports whether typ is in the set.
func (s TypeSet) Has(typ uint16) bool {
	for _, t := range s.types[:s.n] {
		if t == typ {
			return true
		}
	}
	return false
}

// Len returns the number of types in the set.
func (s TypeSet) Len() int { return int(s.n) }

// All yields the types in increasing order.
func (s TypeSet) All() iter.Seq[uint16] {
	return func(yield func(uint16) bool) {
		for _, t := range s.types[:s.n] {
			if !yield(t) {
				return
			}
		}
	}
}

// String lists the types by name, "PROCTITLE,CWD" style, in numeric order.
func (s TypeSet) String() string {
	names := make([]string, 0, s.n)
	for t := range s.All() {
		names = append(names, record.TypeName(t))
	}
	return strings.Join(names, ",")
}

// Verdict is what a Program decides for one event: drop it, or keep it
// without the record types in Strip. The zero value drops.
type Verdict struct {
	Keep  bool
	Strip TypeSet
}

// Keeps reports whether a record of type typ belongs in the container's copy
// of the event.
func (v Verdict) Keeps(typ uint16) bool { return v.Keep && (v.Strip.n == 0 || !v.Strip.Has(typ)) }

// String is "keep", "drop" or "keep strip PROCTITLE,CWD".
func (v Verdict) String() string {
	switch {
	case !v.Keep:
		return "drop"
	case v.Strip.Len() == 0:
		return "keep"
	}
	return "keep strip " + v.Strip.String()
}
