package remote

import (
	"encoding/binary"
	"fmt"
)

// Wire constants of the remote-logging protocol, as defined by auditd's
// AUDIT_RMW_* macros.
const (
	// HeaderSize is the size of a frame header in bytes.
	HeaderSize = 16
	// Magic starts every frame. It has no 0x0a byte, so a frame is never
	// mistaken for an ASCII-format line.
	Magic uint32 = 0xff0000fe
	// HeaderVersion is the only header version there is.
	HeaderVersion = 0
	// MessageVersion is the only message version there is.
	MessageVersion = 0
	// MaxWirePayload is the largest payload the 16-bit length field can
	// describe.
	MaxWirePayload = 1<<16 - 1
	// DefaultMaxPayload is the largest record the Sender sends unless told
	// otherwise. auditd 3.0.9 reads frames into an 8970-byte buffer, so
	// its real limit is 8954 payload bytes.
	DefaultMaxPayload = 8950
	// DefaultListenMaxPayload is the largest payload the Listener accepts
	// unless told otherwise: audisp-remote reads lines into buffers of
	// auditd's MAX_AUDIT_MESSAGE_LENGTH (8970) bytes.
	DefaultListenMaxPayload = 8970
)

// Type is a frame type.
type Type uint32

// Frame types. Replies have the reply bit set; of those, warnings (the
// record was written) have the warn bit and failures (it was not) the
// fatal bit.
const (
	TypeMessage   Type = 0x00000000
	TypeHeartbeat Type = 0x00000001
	TypeAck       Type = 0x40000000
	TypeEnding    Type = 0x40000001
	TypeDiskLow   Type = 0x50000001
	TypeDiskFull  Type = 0x60000001
	TypeDiskError Type = 0x60000002

	// ReplyMask is set in every reply type.
	ReplyMask Type = 0x40000000
	// FatalMask is set in replies that report a failure.
	FatalMask Type = 0x20000000
	// WarnMask is set in replies that report success with a warning.
	WarnMask Type = 0x10000000
)

// IsReply reports whether t is a reply (server to client) type.
func (t Type) IsReply() bool { return t&ReplyMask != 0 }

func (t Type) String() string {
	switch t {
	case TypeMessage:
		return "message"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeAck:
		return "ack"
	case TypeEnding:
		return "ending"
	case TypeDiskLow:
		return "disk-low"
	case TypeDiskFull:
		return "disk-full"
	case TypeDiskError:
		return "disk-error"
	}
	return fmt.Sprintf("type-%#08x", uint32(t))
}

// Frame is one decoded frame.
type Frame struct {
	Type Type
	// Seq is the sequence number; a reply carries the one of the frame
	// it answers.
	Seq uint32
	// Payload is the record line of a message, or the text of a reply.
	// A Frame returned by Decoder.Decode shares its Payload with the
	// decoder's buffer until the next call.
	Payload []byte
}

// AppendFrame appends the encoding of f to dst. It fails only when the
// payload is longer than MaxWirePayload.
func AppendFrame(dst []byte, f Frame) ([]byte, error) {
	if len(f.Payload) > MaxWirePayload {
		return dst, fmt.Errorf("encoding %s frame %d: payload of %d bytes exceeds the 16-bit length field",
			f.Type, f.Seq, len(f.Payload))
	}
	dst = appendHeader(dst, f.Type, len(f.Payload), f.Seq)
	return append(dst, f.Payload...), nil
}

// appendHeader appends a header; n must fit in 16 bits.
func appendHeader(dst []byte, t Type, n int, seq uint32) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, Magic)
	dst = append(dst, HeaderVersion, MessageVersion)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(t))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
	return binary.LittleEndian.AppendUint32(dst, seq)
}
