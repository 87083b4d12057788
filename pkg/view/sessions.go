package view

import "sync"

// DefaultSessions is how many sessions NewSessions(0) remembers.
const DefaultSessions = 4096

// Sessions remembers the audit sessions begun inside one container: the
// ses= of the LOGIN records copied to it. It is bounded; when full, the
// session begun longest ago is forgotten first. Safe for concurrent use.
type Sessions struct {
	mu   sync.Mutex // guards the fields below
	set  map[uint32]struct{}
	ring []uint32 // the sessions in the order they began
	next int      // ring[next] is the oldest once the ring is full
}

// NewSessions returns an empty set that holds up to max sessions
// (0: DefaultSessions).
func NewSessions(max int) *Sessions {
	if max <= 0 {
		max = DefaultSessions
	}
	return &Sessions{set: make(map[uint32]struct{}, max), ring: make([]uint32, 0, max)}
}

// Begin notes session ses as begun inside the container. Unset is
// ignored, as is a session it holds already.
func (s *Sessions) Begin(ses uint32) {
	if ses == Unset {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[ses]; ok {
		return
	}
	if len(s.ring) < cap(s.ring) {
		s.ring = append(s.ring, ses)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = ses
		s.next = (s.next + 1) % len(s.ring)
	}
	s.set[ses] = struct{}{}
}

// Has reports whether session ses began inside the container.
func (s *Sessions) Has(ses uint32) bool {
	s.mu.Lock()
	_, ok := s.set[ses]
	s.mu.Unlock()
	return ok
}

// Len is how many sessions it holds.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.set)
}
