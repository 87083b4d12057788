package deliver

import (
	"context"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
)

// Target delivers one container's copies to where its tenant reads them.
//
// Run drains r until ctx ends and then returns nil. It commits an item only
// once the item is safely handed on (written to the file, acknowledged by the
// peer); when handing on fails it rewinds r and tries again later, so the
// queue keeps every copy meanwhile. A tenant's failure (a full volume, a
// peer that is down) is never an error of Run: it shows in Status. Run
// returns an error only when it cannot go on at all. Run is called once.
//
// Status may be called from any goroutine at any time. Close releases what
// the target holds (its file, its network namespace); it is called once,
// after Run has returned, or instead of Run when the container does not
// start.
type Target interface {
	Run(ctx context.Context, r queue.Reader) error
	Status() Status
	Close() error
}

// Status is a snapshot of a Target.
type Status struct {
	// Connected is set while the target can take copies (a file target
	// always can; a remote one while its connection is up).
	Connected bool
	// Acked counts copies handed on and committed.
	Acked uint64
	// InFlight is the number of copies handed on and not yet confirmed.
	InFlight int
	// Retried counts copies handed on again after a failure.
	Retried uint64
	// WaitingOnReceiver is set while the target waits for its receiver
	// to confirm copies it sent (the receiver is the bottleneck);
	// ReceiverWait is how long it has waited so in all.
	WaitingOnReceiver bool
	ReceiverWait      time.Duration
	// LastError is the last failure, empty for none.
	LastError     string
	LastErrorTime time.Time
}
