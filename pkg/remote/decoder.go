package remote

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Decoder reads frames from a stream. It is not safe for concurrent use.
type Decoder struct {
	br      *bufio.Reader
	max     int
	pending int   // bytes of the previous frame still in br
	off     int64 // stream offset of the next frame
}

// NewDecoder returns a decoder that rejects payloads longer than
// maxPayload bytes. Zero or a negative value means MaxWirePayload.
func NewDecoder(r io.Reader, maxPayload int) *Decoder {
	if maxPayload <= 0 || maxPayload > MaxWirePayload {
		maxPayload = MaxWirePayload
	}
	size := max(HeaderSize+maxPayload, 32<<10)
	return &Decoder{br: bufio.NewReaderSize(r, size), max: maxPayload}
}

// Offset returns the stream offset of the frame last decoded.
func (d *Decoder) Offset() int64 { return d.off }

// Buffered reports how many bytes are read but not yet decoded. It is
// nonzero while the decoder waits for the rest of a frame, and it tells a
// server whether to flush its replies before the next blocking read.
func (d *Decoder) Buffered() int { return d.br.Buffered() - d.pending }

// Decode returns the next frame. Its Payload is valid until the next call.
// At a clean end of stream between frames it returns io.EOF; a malformed
// or truncated frame yields a *FrameError; other read errors are returned
// as they are. After an error the decoder must not be used again.
func (d *Decoder) Decode() (Frame, error) {
	if d.pending > 0 {
		d.br.Discard(d.pending) // cannot fail: the bytes were peeked
		d.off += int64(d.pending)
		d.pending = 0
	}
	hdr, err := d.br.Peek(HeaderSize)
	if err != nil {
		return Frame{}, d.readErr(err, len(hdr), HeaderSize)
	}
	if m := binary.LittleEndian.Uint32(hdr); m != Magic {
		return Frame{}, d.frameErr(ErrBadMagic, "magic %#08x, want %#08x", m, Magic)
	}
	if hdr[4] != HeaderVersion || hdr[5] != MessageVersion {
		return Frame{}, d.frameErr(ErrBadVersion, "header version %d, message version %d, want 0 and 0", hdr[4], hdr[5])
	}
	f := Frame{
		Type: Type(binary.LittleEndian.Uint32(hdr[6:])),
		Seq:  binary.LittleEndian.Uint32(hdr[12:]),
	}
	n := int(binary.LittleEndian.Uint16(hdr[10:]))
	if n > d.max {
		return Frame{}, d.frameErr(ErrTooLong, "%s frame %d declares %d payload bytes, limit %d", f.Type, f.Seq, n, d.max)
	}
	whole, err := d.br.Peek(HeaderSize + n)
	if err != nil {
		return Frame{}, d.readErr(err, len(whole), HeaderSize+n)
	}
	f.Payload = whole[HeaderSize:]
	d.pending = HeaderSize + n
	return f, nil
}

func (d *Decoder) readErr(err error, got, want int) error {
	if errors.Is(err, io.EOF) {
		if got == 0 {
			return io.EOF
		}
		return d.frameErr(ErrShortFrame, "stream ended after %d of %d bytes", got, want)
	}
	return err
}

func (d *Decoder) frameErr(kind error, format string, args ...any) error {
	return &FrameError{Offset: d.off, Err: kind, Detail: fmt.Sprintf(format, args...)}
}
