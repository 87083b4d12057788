package queue

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by Read on a closed queue.
var ErrClosed = errors.New("queue closed")

// ErrSpoolInUse is matched (errors.Is) by the error of Open when another
// open queue, in this process or another, uses the spool directory.
var ErrSpoolInUse = errors.New("spool in use by another queue")

// Error is a failure at the disk boundary of a queue: opening its spool
// (and recovering what a previous run left) or closing it.
type Error struct {
	// Op is what was being done: "opening" or "closing".
	Op string
	// Dir is the spool directory.
	Dir string
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s queue spool %s: %v", e.Op, e.Dir, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }
