package deliver

import "errors"

// The kinds of a refused change, for errors.Is. Their text is the control
// API's, whose codes they map to.
var (
	ErrInvalid  = errors.New("invalid")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already registered")
	ErrConflict = errors.New("conflict")
)
