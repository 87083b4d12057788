package view_test

import (
	"testing"

	"github.com/auditd-ns/auditd-ns/pkg/view"
)

func TestSessionsBoundedOldestOut(t *testing.T) {
	s := view.NewSessions(3)
	for _, ses := range []uint32{1, 2, 3, 2, view.Unset} {
		s.Begin(ses)
	}
	if s.Len() != 3 || s.Has(view.Unset) {
		t.Fatalf("Len = %d, Has(unset) = %v; want 3, false", s.Len(), s.Has(view.Unset))
	}
	s.Begin(4) // 1 began longest ago
	if s.Has(1) || !s.Has(2) || !s.Has(3) || !s.Has(4) || s.Len() != 3 {
		t.Errorf("after a 4th: has 1 %v 2 %v 3 %v 4 %v, len %d", s.Has(1), s.Has(2), s.Has(3), s.Has(4), s.Len())
	}
	for ses := uint32(10); ses < 100; ses++ {
		s.Begin(ses)
	}
	if s.Len() != 3 || !s.Has(99) || !s.Has(97) || s.Has(96) {
		t.Errorf("after many: len %d, has 97 %v 96 %v", s.Len(), s.Has(97), s.Has(96))
	}
	if view.NewSessions(0).Len() != 0 {
		t.Error("new set not empty")
	}
}
