package remote

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestWireConstantsDistinct(t *testing.T) {
	types := []Type{TypeMessage, TypeHeartbeat, TypeAck, TypeEnding, TypeDiskLow, TypeDiskFull, TypeDiskError}
	seen := map[Type]bool{}
	for _, ty := range types {
		if seen[ty] {
			t.Errorf("type %#x defined twice", uint32(ty))
		}
		seen[ty] = true
	}
	for _, ty := range types[2:] {
		if !ty.IsReply() {
			t.Errorf("%s: reply bit not set", ty)
		}
	}
	if TypeDiskLow&WarnMask == 0 || TypeDiskFull&FatalMask == 0 || TypeDiskError&FatalMask == 0 {
		t.Error("warn/fatal bits do not match auditd's AUDIT_RMW_TYPE_* values")
	}
}

// TestHeaderLayout pins the byte layout of auditd's AUDIT_RMW_PACK_HEADER:
// magic at 0, versions at 4 and 5, type at 6, length at 10, sequence at 12,
// all little-endian.
func TestHeaderLayout(t *testing.T) {
	got, err := AppendFrame(nil, Frame{Type: TypeDiskFull, Seq: 0x01020304, Payload: []byte("ab")})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xfe, 0x00, 0x00, 0xff, // magic
		0x00, 0x00, // header and message version
		0x01, 0x00, 0x00, 0x60, // type
		0x02, 0x00, // length
		0x04, 0x03, 0x02, 0x01, // sequence
		'a', 'b',
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoded\n got %x\nwant %x", got, want)
	}
}

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Type: TypeMessage, Seq: 1, Payload: []byte("type=USER msg=audit(1.000:1): hello")},
		{Type: TypeHeartbeat, Seq: 2},
		{Type: TypeAck, Seq: 0xffffffff},
		{Type: TypeDiskFull, Seq: 7, Payload: []byte("disk full")},
		{Type: TypeMessage, Seq: 8, Payload: bytes.Repeat([]byte("x"), MaxWirePayload)},
	}
	var stream []byte
	for _, f := range frames {
		var err error
		if stream, err = AppendFrame(stream, f); err != nil {
			t.Fatal(err)
		}
	}
	// One byte at a time, to exercise partial reads.
	d := NewDecoder(iotest.OneByteReader(bytes.NewReader(stream)), 0)
	for i, want := range frames {
		got, err := d.Decode()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Type != want.Type || got.Seq != want.Seq || !bytes.Equal(got.Payload, want.Payload) {
			t.Errorf("frame %d: got %s/%d/%d bytes, want %s/%d/%d bytes", i, got.Type, got.Seq, len(got.Payload), want.Type, want.Seq, len(want.Payload))
		}
	}
	if _, err := d.Decode(); err != io.EOF {
		t.Errorf("after last frame: got %v, want io.EOF", err)
	}
}

func TestAppendFrameTooLong(t *testing.T) {
	_, err := AppendFrame(nil, Frame{Payload: make([]byte, MaxWirePayload+1)})
	if err == nil {
		t.Fatal("no error for a payload the length field cannot hold")
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := AppendFrame(nil, Frame{Type: TypeMessage, Seq: 3, Payload: []byte("hello")})
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		in     []byte
		want   error
		detail string
	}{
		{"garbage", []byte("GET / HTTP/1.0\r\n\r\n"), ErrBadMagic, "magic 0x20544547"},
		{"header version", mutate(func(b []byte) []byte { b[4] = 1; return b }), ErrBadVersion, "header version 1"},
		{"message version", mutate(func(b []byte) []byte { b[5] = 2; return b }), ErrBadVersion, "message version 2"},
		{"oversize", mutate(func(b []byte) []byte { b[10], b[11] = 0xff, 0xff; return b }), ErrTooLong, "declares 65535 payload bytes, limit 100"},
		{"half header", good[:7], ErrShortFrame, "after 7 of 16 bytes"},
		{"half payload", good[:18], ErrShortFrame, "after 18 of 21 bytes"},
		{"second frame bad", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), ErrBadMagic, "magic 0x000000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder(bytes.NewReader(tt.in), 100)
			var err error
			for err == nil {
				_, err = d.Decode()
			}
			var fe *FrameError
			if !errors.As(err, &fe) || !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want a FrameError matching %v", err, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(tt.detail)) {
				t.Errorf("error %q does not say %q", err, tt.detail)
			}
		})
	}
}

func TestDecodeOffsetNamesFrame(t *testing.T) {
	good, _ := AppendFrame(nil, Frame{Type: TypeMessage, Seq: 3, Payload: []byte("hello")})
	in := append(bytes.Clone(good), "junkjunkjunkjunk"...)
	d := NewDecoder(bytes.NewReader(in), 0)
	d.Decode()
	_, err := d.Decode()
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Offset != int64(len(good)) {
		t.Fatalf("got %v, want a FrameError at offset %d", err, len(good))
	}
}

func FuzzDecode(f *testing.F) {
	seed, _ := AppendFrame(nil, Frame{Type: TypeMessage, Seq: 1, Payload: []byte("type=USER msg=audit(1.000:1): x")})
	f.Add(seed)
	f.Add(seed[:10])
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in), DefaultListenMaxPayload)
		var re []byte
		for {
			fr, err := d.Decode()
			if err != nil {
				var fe *FrameError
				if err != io.EOF && !errors.As(err, &fe) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				break
			}
			if len(fr.Payload) > DefaultListenMaxPayload {
				t.Fatalf("payload of %d bytes passed the limit", len(fr.Payload))
			}
			re, err = AppendFrame(re, fr)
			if err != nil {
				t.Fatal(err)
			}
		}
		// Every decoded frame re-encodes to exactly the bytes it came from.
		if !bytes.HasPrefix(in, re) {
			t.Fatalf("re-encoding differs from the input prefix")
		}
	})
}
