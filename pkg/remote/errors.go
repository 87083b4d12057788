package remote

import (
	"errors"
	"fmt"
)

// Sentinel errors matched by FrameError through errors.Is.
var (
	// ErrBadMagic means the bytes at a frame boundary are not a frame.
	ErrBadMagic = errors.New("bad magic")
	// ErrBadVersion means a header or message version other than 0.
	ErrBadVersion = errors.New("bad version")
	// ErrTooLong means a payload length above the decoder's limit.
	ErrTooLong = errors.New("payload too long")
	// ErrShortFrame means the stream ended inside a frame.
	ErrShortFrame = errors.New("short frame")
)

// FrameError is a frame that could not be decoded. It names what was
// wrong and where in the stream.
type FrameError struct {
	// Offset is the stream offset of the frame's first byte.
	Offset int64
	// Err is one of ErrBadMagic, ErrBadVersion, ErrTooLong, ErrShortFrame.
	Err error
	// Detail says what was found, such as "magic 0x41414141".
	Detail string
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("decoding frame at offset %d: %v: %s", e.Offset, e.Err, e.Detail)
}

func (e *FrameError) Unwrap() error { return e.Err }

// OpError is a failure at the network boundary: dialing, writing frames,
// reading replies, accepting.
type OpError struct {
	// Op is what was being done: "dial", "write", "read", "reply", "accept".
	Op string
	// Addr is the peer's address.
	Addr string
	Err  error
}

func (e *OpError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Addr, e.Err)
}

func (e *OpError) Unwrap() error { return e.Err }
