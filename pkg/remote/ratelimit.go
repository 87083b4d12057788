package remote

import "time"

// rateLimit is a token bucket for log lines: burst events at once, then
// one per interval. The caller logs only when allow returns true. It is
// not safe for concurrent use.
type rateLimit struct {
	every  time.Duration
	burst  int
	tokens float64
	last   time.Time
}

func (r *rateLimit) allow(now time.Time) bool {
	burst := float64(max(r.burst, 1))
	if r.last.IsZero() {
		r.tokens = burst
	} else {
		r.tokens = min(burst, r.tokens+float64(now.Sub(r.last))/float64(r.every))
	}
	r.last = now
	if r.tokens < 1 {
		return false
	}
	r.tokens--
	return true
}
