package queue

// gap says that copies were dropped immediately before the item seq. The
// reader learns of lost in that item's Lost. A queue keeps its gaps sorted by
// seq; there are few of them, because drops take the oldest items and so
// merge into the gap at the head.
type gap struct {
	seq  uint64
	lost uint64
	// inflight were dropped after the reader was given them, and told
	// were reported in a Lost the reader was given, that dropped item's.
	// Both count as delivered if the reader commits past them, and become
	// lost if it rewinds.
	inflight, told uint64
	// un are records the router left unrouted before seq (never pushed),
	// unTold those of them reported with an item the reader was given and
	// that was dropped since; they follow lost and told.
	un, unTold Unrouted
}

// empty reports whether g says nothing is missing.
func (g *gap) empty() bool {
	return g.lost == 0 && g.inflight == 0 && g.told == 0 && g.un.Records == 0 && g.unTold.Records == 0
}

// addGap records that copies are missing just before seq: lost unread and
// inflight read ones. Gaps at or before seq that now precede nothing (their
// item was dropped too) merge into it: every gap with a seq in [from, seq]
// is folded in; the reader was given those before readSeq.
func addGap(gs []gap, from, seq, lost, inflight, readSeq uint64) []gap {
	i := 0
	for i < len(gs) && gs[i].seq < from {
		i++
	}
	g := gap{seq: seq, lost: lost, inflight: inflight}
	j := i
	for ; j < len(gs) && gs[j].seq <= seq; j++ {
		m := gs[j]
		g.inflight += m.inflight
		if m.seq < readSeq {
			g.told += m.told + m.lost
			g.unTold = g.unTold.Then(m.unTold).Then(m.un)
		} else {
			g.lost += m.lost
			g.told += m.told
			g.un = g.un.Then(m.un)
			g.unTold = g.unTold.Then(m.unTold)
		}
	}
	if g.empty() {
		return gs
	}
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
// reader has committed those items, so the tenant was told. It returns the
// in-flight drops among them: delivered.
func dropGaps(gs []gap, seq uint64) ([]gap, uint64) {
	i := 0
	var delivered uint64
	for i < len(gs) && gs[i].seq <= seq {
		delivered += gs[i].inflight
		i++
	}
	if i == 0 {
		return gs, 0
	}
	return append(gs[:0], gs[i:]...), delivered
}

// missingBefore returns the copies lost just before seq and the records
// left unrouted there (nil: none).
func missingBefore(gs []gap, seq uint64) (uint64, *Unrouted) {
	for i := range gs {
		g := &gs[i]
		if g.seq == seq {
			if g.un.Records == 0 {
				return g.lost, nil
			}
			u := g.un
			return g.lost, &u
		}
		if g.seq > seq {
			break
		}
	}
	return 0, nil
}

// rewindGaps makes the in-flight drops and told losses lost again: after
// a rewind the reader will not see those items again. It returns how many
// in-flight drops there were: losses not counted yet.
func rewindGaps(gs []gap) uint64 {
	var n uint64
	for i := range gs {
		n += gs[i].inflight
		gs[i].lost += gs[i].inflight + gs[i].told
		gs[i].inflight, gs[i].told = 0, 0
		gs[i].un = gs[i].unTold.Then(gs[i].un)
		gs[i].unTold = Unrouted{}
	}
	return n
}

// deliveredGaps forgets the in-flight drops and told losses: the reader
// committed every item it was given, so it delivered them. It returns the
// in-flight drops.
func deliveredGaps(gs []gap) ([]gap, uint64) {
	out := gs[:0]
	var delivered uint64
	for _, g := range gs {
		delivered += g.inflight
		g.inflight, g.told = 0, 0
		g.unTold = Unrouted{}
		if g.lost > 0 || g.un.Records > 0 {
			out = append(out, g)
		}
	}
	return out, delivered
}
