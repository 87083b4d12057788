package view

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
)

// Overflow is the id an unmapped uid or gid shows as in a user namespace
// (the kernel's default overflowuid and overflowgid).
const Overflow = 65534

// Unset is the id and session value meaning "none" (printed 4294967295,
// or -1 by the fields the kernel prints with %d).
const Unset = ^uint32(0)

// Extent is one line of a uid_map or gid_map: Count ids from Outside (in
// the namespace of whoever read the map: the host) show as Inside.
type Extent struct {
	Inside, Outside, Count uint32
}

// IDMap is a parsed /proc/PID/uid_map or gid_map as read from the host.
// The zero IDMap is the identity: the map of a container that has no user
// namespace of its own. A parsed map with no extents maps nothing (a user
// namespace whose map was never written).
type IDMap struct {
	extents []Extent // sorted by Outside, not overlapping
	parsed  bool
}

// Identity reports whether m is the zero IDMap.
func (m IDMap) Identity() bool { return !m.parsed }

// Extents returns the map's lines, sorted by Outside.
func (m IDMap) Extents() []Extent { return slices.Clone(m.extents) }

// maxExtents is the kernel's limit on lines in a map (UID_GID_MAP_MAX_EXTENTS).
const maxExtents = 340

// ParseIDMap parses the text of a uid_map or gid_map: lines of three
// decimal numbers "inside outside count", separated by spaces or tabs.
// It refuses what the kernel never writes: a count of 0, a range past
// 2^32, ranges that overlap on either side, more than 340 lines.
func ParseIDMap(b []byte) (IDMap, error) {
	m := IDMap{parsed: true}
	for n := 1; len(b) > 0; n++ {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		words := bytes.Fields(line)
		if len(words) == 0 {
			continue
		}
		if len(words) != 3 {
			return IDMap{}, fmt.Errorf("id map line %d: %d words, want 3 (inside outside count)", n, len(words))
		}
		var v [3]uint32
		for i, w := range words {
			x, err := strconv.ParseUint(string(w), 10, 32)
			if err != nil {
				return IDMap{}, fmt.Errorf("id map line %d: word %d %q is not a 32-bit number", n, i+1, w)
			}
			v[i] = uint32(x)
		}
		e := Extent{Inside: v[0], Outside: v[1], Count: v[2]}
		if e.Count == 0 || uint64(e.Inside)+uint64(e.Count) > 1<<32 || uint64(e.Outside)+uint64(e.Count) > 1<<32 {
			return IDMap{}, fmt.Errorf("id map line %d: range %d %d %d is empty or passes 2^32", n, e.Inside, e.Outside, e.Count)
		}
		if len(m.extents) == maxExtents {
			return IDMap{}, fmt.Errorf("id map line %d: more than %d lines", n, maxExtents)
		}
		m.extents = append(m.extents, e)
	}
	for i, e := range m.extents {
		for _, f := range m.extents[:i] {
			if overlap(e.Inside, f.Inside, e.Count, f.Count) || overlap(e.Outside, f.Outside, e.Count, f.Count) {
				return IDMap{}, fmt.Errorf("id map: ranges %d %d %d and %d %d %d overlap", f.Inside, f.Outside, f.Count, e.Inside, e.Outside, e.Count)
			}
		}
	}
	slices.SortFunc(m.extents, func(a, b Extent) int { return cmpU32(a.Outside, b.Outside) })
	return m, nil
}

func overlap(a, b, na, nb uint32) bool {
	return uint64(a) < uint64(b)+uint64(nb) && uint64(b) < uint64(a)+uint64(na)
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Map returns host id as the namespace shows it: Overflow when the map
// does not cover it, the id itself for the zero (identity) IDMap. Unset
// stays Unset.
func (m IDMap) Map(host uint32) uint32 {
	if !m.parsed || host == Unset {
		return host
	}
	ext := m.extents
	if len(ext) <= 4 { // the usual: one line, or a few
		for _, e := range ext {
			if host-e.Outside < e.Count {
				return e.Inside + (host - e.Outside)
			}
		}
		return Overflow
	}
	i, _ := slices.BinarySearchFunc(ext, host, func(e Extent, h uint32) int { return cmpU32(e.Outside, h) })
	// ext[i] is the first extent starting at or after host: the one
	// holding host starts there or is the one before.
	if i < len(ext) && ext[i].Outside == host {
		return ext[i].Inside
	}
	if i > 0 {
		if e := ext[i-1]; host-e.Outside < e.Count {
			return e.Inside + (host - e.Outside)
		}
	}
	return Overflow
}
