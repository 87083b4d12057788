package queue

import (
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MinSpool is the smallest spool limit other than zero: four segments of
// the smallest size.
const MinSpool = 4 * minSegment

// Limits bounds a queue.
type Limits struct {
	// Memory is the most bytes of records held in memory, from 1 byte to
	// 2 GiB. Each item also takes 4 bytes of bookkeeping, not counted.
	// The memory grows to this size as needed, and an idle queue gives
	// back a buffer it grew for a burst.
	Memory int64
	// Spool is the most bytes of segment files on disk (records plus 16
	// bytes per item and 32 per file), zero or at least MinSpool. Zero
	// means no spool: the queue lives in memory only and is lost on Close.
	// A segment is Spool/8 (at least 32 KiB, at most 16 MiB); delivered
	// items stay on disk, and count, until their whole segment is
	// delivered, and a full spool drops its oldest segment at once. Close
	// moves everything in memory to the spool, beyond Spool if need be, so
	// that a restart loses nothing; the excess goes as new items come.
	Spool int64
}

// Queue is a bounded queue of record copies for one container. Push never
// waits for the reader or for fsync; Read, Commit and Rewind are for one
// reader goroutine, which may run alongside the goroutine that pushes. All
// methods are safe to call at the same time. The zero value is not usable:
// call Open.
type Queue struct {
	lim Limits
	log hclog.Logger

	// notify wakes a Read waiting for items; done is closed by Close.
	notify chan struct{}
	done   chan struct{}

	mu      sync.Mutex // guards everything below
	closed  bool
	waiting bool // a Read waits for notify
	// emptied is closed (and cleared) when the queue becomes empty, for
	// WaitEmpty; nil while nobody waits.
	emptied chan struct{}
	mem     ring
	peak    int64  // most bytes mem held at once (Stats.PeakMemoryBytes)
	memHead uint64 // seq of the oldest item in mem
	nextSeq uint64 // seq of the next item pushed
	sp      *spool // nil without a spool
	st      state
	readSeq uint64 // next seq Read hands out
	commit  uint64 // every seq up to this one is committed
	gaps    []gap  // copies lost, not yet told to a committing reader
	stats   Stats  // the counters; the queued figures are filled by Stats
	errLog  time.Time

	out    []Item // returned by Read, reused
	outBuf []byte // holds the Data of out
}

var _ Reader = (*Queue)(nil)
