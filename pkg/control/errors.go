package control

import (
	"context"
	"errors"
	"fmt"

	"github.com/auditd-ns/auditd-ns/pkg/fileerr"
)

// Error codes, the "code" of an error answer.
const (
	CodeMalformed   = "malformed"   // the line is not a JSON request
	CodeVersion     = "version"     // "v" is missing or not Version
	CodeUnknownOp   = "unknown-op"  // "op" is not an operation
	CodeTooLarge    = "too-large"   // the request is longer than MaxRequest
	CodeBadRequest  = "bad-request" // a field is missing or out of range
	CodeInvalid     = "invalid"     // the container or rules YAML is wrong
	CodeNotFound    = "not-found"   // no container of that name
	CodeExists      = "exists"      // the name or id is registered already
	CodeConflict    = "conflict"    // the tree does not allow it (nested containers remain)
	CodeForbidden   = "forbidden"   // outside this socket's scope
	CodeBusy        = "busy"        // too many connections
	CodeUnavailable = "unavailable" // the daemon cannot do it now
	CodeTimeout     = "timeout"     // the operation ran out of time
	CodeInternal    = "internal"    // anything else
)

// Sentinels that a Backend wraps (fmt.Errorf("...: %w", ErrNotFound)) to
// choose the code of its error, and that a client's *Error matches with
// errors.Is.
var (
	ErrInvalid     = errors.New("invalid")
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already registered")
	ErrConflict    = errors.New("conflict")
	ErrForbidden   = errors.New("forbidden")
	ErrUnavailable = errors.New("unavailable")
)

var sentinels = map[string]error{
	CodeInvalid:     ErrInvalid,
	CodeNotFound:    ErrNotFound,
	CodeExists:      ErrExists,
	CodeConflict:    ErrConflict,
	CodeForbidden:   ErrForbidden,
	CodeUnavailable: ErrUnavailable,
}

// Error is an error answer: which operation, a code, and what was wrong.
// The client returns it as is; the server sends it.
type Error struct {
	Op      string `json:"op,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Code + ": " + e.Message
	}
	return e.Op + ": " + e.Code + ": " + e.Message
}

// Is matches the sentinel of e's code (ErrNotFound for "not-found", ...).
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

func errorf(op, code, format string, args ...any) *Error {
	return &Error{Op: op, Code: code, Message: fmt.Sprintf(format, args...)}
}

// toError turns a Backend's or a parser's error into an answer.
func toError(op string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Op == "" {
			e = &Error{Op: op, Code: e.Code, Message: e.Message}
		}
		return e
	}
	code := CodeInternal
	var fileErr *fileerr.Error
	switch {
	case errors.As(err, &fileErr):
		code = CodeInvalid
	case errors.Is(err, context.DeadlineExceeded):
		code = CodeTimeout
	case errors.Is(err, context.Canceled):
		code = CodeUnavailable
	default:
		for c, s := range sentinels {
			if errors.Is(err, s) {
				code = c
			}
		}
	}
	return &Error{Op: op, Code: code, Message: err.Error()}
}
