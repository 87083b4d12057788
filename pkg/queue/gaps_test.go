package queue

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestGaps(t *testing.T) {
	opt := cmp.AllowUnexported(gap{})
	var gs []gap
	// Two unread drops before 5, then 5 and 6 dropped (read up to 6).
	gs = addGap(gs, 3, 5, 2, 0, 1)
	gs = addGap(gs, 5, 7, 0, 2, 7)
	if diff := cmp.Diff([]gap{{seq: 7, inflight: 2, told: 2}}, gs, opt); diff != "" {
		t.Errorf("after merging (-want +got):\n%s", diff)
	}
	// A gap further on stays apart; lostBefore finds each.
	gs = addGap(gs, 20, 21, 4, 0, 7)
	if got := lostBefore(gs, 7); got != 0 {
		t.Errorf("lostBefore(7) = %d, want 0: only told and in-flight drops", got)
	}
	if got := lostBefore(gs, 21); got != 4 {
		t.Errorf("lostBefore(21) = %d, want 4", got)
	}
	// A rewind makes them lost; only the in-flight ones are new losses.
	if n := rewindGaps(gs); n != 2 {
		t.Errorf("rewindGaps = %d, want 2", n)
	}
	if got := lostBefore(gs, 7); got != 4 {
		t.Errorf("after rewind lostBefore(7) = %d, want 4", got)
	}
	// Committing 7 forgets its gap.
	gs, _ = dropGaps(gs, 7)
	if diff := cmp.Diff([]gap{{seq: 21, lost: 4}}, gs, opt); diff != "" {
		t.Errorf("after dropGaps (-want +got):\n%s", diff)
	}
	// Committing everything read forgets in-flight drops, keeps the lost.
	gs = addGap(gs, 22, 23, 0, 1, 30)
	gs, n := deliveredGaps(gs)
	if n != 1 {
		t.Errorf("deliveredGaps delivered %d, want 1", n)
	}
	if diff := cmp.Diff([]gap{{seq: 21, lost: 4}}, gs, opt); diff != "" {
		t.Errorf("after deliveredGaps (-want +got):\n%s", diff)
	}
}

func TestRingWraps(t *testing.T) {
	var r ring
	var want [][]byte
	next := 0
	for round := range 200 {
		for range round%7 + 1 {
			b := make([]byte, next%97)
			for i := range b {
				b[i] = byte(next)
			}
			next++
			for !r.grow(len(b), 1000) {
				r.pop()
				want = want[1:]
			}
			r.push(b)
			want = append(want, b)
		}
		for i := range r.count {
			a, b := r.at(r.seek(i))
			if got := append(append([]byte{}, a...), b...); !cmp.Equal(got, want[i]) {
				t.Fatalf("round %d: item %d is %v, want %v", round, i, got, want[i])
			}
		}
		for range round % 3 {
			if r.count > 0 {
				r.pop()
				want = want[1:]
			}
		}
	}
}

// lostBefore returns the copies lost just before seq.
func lostBefore(gs []gap, seq uint64) uint64 {
	lost, _ := missingBefore(gs, seq)
	return lost
}
