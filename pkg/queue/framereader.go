package queue

import "io"

// readChunk is how much a frameReader reads from a file at a time.
const readChunk = 64 << 10

// frameReader decodes frames from an io.ReaderAt through a window of bytes
// read ahead, so that reading a run of small frames costs one pread per
// readChunk rather than two per frame.
type frameReader struct {
	r    io.ReaderAt
	size int64 // bytes of r that may be read
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

// reset points the reader at r, forgetting any window.
func (fr *frameReader) reset(r io.ReaderAt, size int64) {
	fr.r, fr.size, fr.off, fr.n = r, size, 0, 0
}

// at decodes the frame at off. The frame's data aliases the window and is
// valid until the next call. It returns io.EOF at the end of the readable
// bytes, errTorn for a frame cut short and errCorrupt for a bad frame.
func (fr *frameReader) at(off int64) (frame, error) {
	if off >= fr.size {
		return frame{}, io.EOF
	}
	w, err := fr.window(off, frameHeaderLen)
	if err != nil {
		return frame{}, err
	}
	n, err := frameLen(w)
	if err != nil {
		return frame{}, err
	}
	if w, err = fr.window(off, n); err != nil {
		return frame{}, err
	}
	return decodeFrame(w)
}

// window returns the bytes [off, off+need) or errTorn if the readable
// bytes end first.
func (fr *frameReader) window(off int64, need int) ([]byte, error) {
	if off+int64(need) > fr.size {
		return nil, errTorn
	}
	if off >= fr.off && off+int64(need) <= fr.off+int64(fr.n) {
		return fr.buf[off-fr.off : off-fr.off+int64(need)], nil
	}
	want := max(need, readChunk)
	if rest := fr.size - off; int64(want) > rest {
		want = int(rest)
	}
	if cap(fr.buf) < want {
		fr.buf = make([]byte, want)
	}
	got, err := fr.r.ReadAt(fr.buf[:want], off)
	fr.off, fr.n = off, got
	if got < need {
		if err == nil || err == io.EOF {
			err = errTorn
		}
		return nil, err
	}
	return fr.buf[:need], nil
}
