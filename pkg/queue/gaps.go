package queue

// gap says that lost copies were dropped immediately before the item seq.
// A queue keeps its gaps sorted by seq; there are few of them, because
// drops take the oldest items and so merge into the gap at the head.
type gap struct {
	seq  uint64
	lost uint64
}

// addGap records that lost copies are missing just before seq. Gaps at or
// before seq that now precede nothing (their item was dropped too) merge into
// it: every gap with a seq in [from, seq] is folded in.
func addGap(gs []gap, from, seq, lost uint64) []gap {
	i := 0
	for i < len(gs) && gs[i].seq < from {
		i++
	}
	j := i
	for j < len(gs) && gs[j].seq <= seq {
		lost += gs[j].lost
		j++
	}
	if lost == 0 {
		return gs
	}
	g := gap{seq: seq, lost: lost}
	if i == j {
		gs = append(gs, gap{})
		copy(gs[i+1:], gs[i:])
		gs[i] = g
		return gs
	}
	gs[i] = g
	return append(gs[:i+1], gs[j:]...)
}

// dropGaps removes the gaps before items up to and including seq: the
// reader has committed those items, so the tenant was told.
func dropGaps(gs []gap, seq uint64) []gap {
	i := 0
	for i < len(gs) && gs[i].seq <= seq {
		i++
	}
	if i == 0 {
		return gs
	}
	return append(gs[:0], gs[i:]...)
}

// lostBefore returns the copies lost just before seq.
func lostBefore(gs []gap, seq uint64) uint64 {
	for _, g := range gs {
		if g.seq == seq {
			return g.lost
		}
		if g.seq > seq {
			break
		}
	}
	return 0
}
