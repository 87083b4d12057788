package rules

import (
	"slices"
	"sort"
	"sync"

	"github.com/elastic/go-libaudit/v2/auparse"
)

// archTable is the syscall table of one audit architecture.
type archTable struct {
	arch   uint32 // AUDIT_ARCH_* as records print it in arch=
	name   string // x86_64, aarch64, ...
	byName map[string]uint32
}

// syscallTables are go-libaudit's tables, indexed by name once. They are
// read-only after the first use.
var syscallTables = sync.OnceValue(func() []archTable {
	var ts []archTable
	for arch, name := range auparse.AuditArchNames {
		calls, ok := auparse.AuditSyscalls[name]
		if !ok {
			continue
		}
		t := archTable{arch: uint32(arch), name: name, byName: make(map[string]uint32, len(calls))}
		for nr, call := range calls {
			t.byName[call] = uint32(nr)
		}
		ts = append(ts, t)
	}
	// Most events come from the host's own architecture: try it first.
	first := map[string]int{"x86_64": 0, "aarch64": 1, "i386": 2, "arm": 3}
	rank := func(t archTable) int {
		if r, ok := first[t.name]; ok {
			return r
		}
		return len(first)
	}
	sort.Slice(ts, func(i, j int) bool {
		if ri, rj := rank(ts[i]), rank(ts[j]); ri != rj {
			return ri < rj
		}
		return ts[i].arch < ts[j].arch
	})
	return ts
})

// archByName returns the AUDIT_ARCH value of an architecture name as
// auditd prints it (x86_64, i386, aarch64, ...).
func archByName(name string) (uint32, bool) {
	for arch, n := range auparse.AuditArchNames {
		if n == name {
			return uint32(arch), true
		}
	}
	return 0, false
}

// syscallSet is a syscall condition: numbers given as numbers match on any
// architecture; names match the number they have on the event's
// architecture.
type syscallSet struct {
	numbers []uint32   // sorted
	archs   []uint32   // in syscallTables order, parallel to byArch
	byArch  [][]uint32 // sorted numbers per architecture
}

// add adds a syscall by name; false when no architecture knows it.
func (s *syscallSet) add(name string) bool {
	found := false
	for _, t := range syscallTables() {
		nr, ok := t.byName[name]
		if !ok {
			continue
		}
		found = true
		i := slices.Index(s.archs, t.arch)
		if i < 0 {
			i = len(s.archs)
			s.archs = append(s.archs, t.arch)
			s.byArch = append(s.byArch, nil)
		}
		s.byArch[i] = insertSorted(s.byArch[i], nr)
	}
	return found
}

func insertSorted(s []uint32, v uint32) []uint32 {
	i, ok := slices.BinarySearch(s, v)
	if ok {
		return s
	}
	return slices.Insert(s, i, v)
}

func (s *syscallSet) has(arch, nr uint32) bool {
	if contains(s.numbers, nr) {
		return true
	}
	for i, a := range s.archs {
		if a == arch {
			return contains(s.byArch[i], nr)
		}
	}
	return false
}

// contains searches a sorted list; lists are short, so a linear scan
// usually wins.
func contains(s []uint32, v uint32) bool {
	if len(s) > 16 {
		_, ok := slices.BinarySearch(s, v)
		return ok
	}
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
