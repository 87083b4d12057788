package remote

import "time"

// rateLimit lets one event through per interval; the caller logs only
// when allow returns true. It is not safe for concurrent use.
type rateLimit struct {
	every time.Duration
	last  time.Time
}

func (r *rateLimit) allow(now time.Time) bool {
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return false
	}
	r.last = now
	return true
}
