package queue

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// A segment file is a 16-byte file header followed by frames:
//
//	file header: "AUQSPOOL" | u32 version (1) | u32 zero
//	frame:       u32 length|flags | u32 CRC-32C | u64 seq | length bytes of data
//
// All integers are little-endian. The CRC covers the length word, the
// sequence number and the data, so a frame cut short by a crash, or one
// whose bytes were never written, fails the check. Within a segment the
// sequence numbers are consecutive. A sealed segment ends with a trailer: a
// frame with flagTrailer set, no data, and the segment's last seq.
const (
	fileHeaderLen  = 16
	frameHeaderLen = 16
	fileVersion    = 1
	flagTrailer    = 1 << 31
	// maxItemLen is the largest Data a queue accepts and a decoder believes.
	maxItemLen = 16 << 20
)

var fileMagic = [8]byte{'A', 'U', 'Q', 'S', 'P', 'O', 'O', 'L'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// errTorn means the bytes end inside a frame.
	errTorn = errors.New("frame cut short")
	// errCorrupt means a frame fails its checks.
	errCorrupt = errors.New("frame corrupt")
)

// frame is one decoded frame. data aliases the decoder's input.
type frame struct {
	seq     uint64
	data    []byte
	trailer bool
}

func (f frame) size() int64 { return int64(frameHeaderLen + len(f.data)) }

// putFileHeader writes the 16-byte file header into b.
func putFileHeader(b []byte) {
	copy(b, fileMagic[:])
	binary.LittleEndian.PutUint32(b[8:], fileVersion)
	binary.LittleEndian.PutUint32(b[12:], 0)
}

// checkFileHeader reports whether b starts with a valid file header.
func checkFileHeader(b []byte) bool {
	return len(b) >= fileHeaderLen && [8]byte(b[:8]) == fileMagic &&
		binary.LittleEndian.Uint32(b[8:]) == fileVersion
}

// appendFrame appends the frame for seq with data a followed by b (the two
// halves of a wrapped ring entry) to dst.
func appendFrame(dst []byte, seq uint64, a, b []byte, trailer bool) []byte {
	word := uint32(len(a) + len(b))
	if trailer {
		word |= flagTrailer
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, word)
	dst = binary.LittleEndian.AppendUint32(dst, 0)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, a...)
	dst = append(dst, b...)
	h := dst[start:]
	crc := crc32.Update(0, castagnoli, h[0:4])
	crc = crc32.Update(crc, castagnoli, h[8:])
	binary.LittleEndian.PutUint32(h[4:], crc)
	return dst
}

// frameLen is the length of the whole frame whose header starts b, or an
// error if the header is short or claims an impossible length.
func frameLen(b []byte) (int, error) {
	if len(b) < frameHeaderLen {
		return 0, errTorn
	}
	word := binary.LittleEndian.Uint32(b)
	n := word &^ flagTrailer
	if n > maxItemLen || (word&flagTrailer != 0 && n != 0) {
		return 0, errCorrupt
	}
	return frameHeaderLen + int(n), nil
}

// decodeFrame decodes the frame at the start of b. It returns errTorn when b
// ends inside the frame and errCorrupt when the frame fails its checks.
func decodeFrame(b []byte) (frame, error) {
	n, err := frameLen(b)
	if err != nil {
		return frame{}, err
	}
	if len(b) < n {
		return frame{}, errTorn
	}
	crc := crc32.Update(0, castagnoli, b[0:4])
	crc = crc32.Update(crc, castagnoli, b[8:n])
	if crc != binary.LittleEndian.Uint32(b[4:]) {
		return frame{}, errCorrupt
	}
	word := binary.LittleEndian.Uint32(b)
	return frame{
		seq:     binary.LittleEndian.Uint64(b[8:]),
		data:    b[frameHeaderLen:n],
		trailer: word&flagTrailer != 0,
	}, nil
}

// scanResult is what scanSegment learnt about a segment file.
type scanResult struct {
	last   uint64 // seq of the last good frame; first-1 if none
	end    int64  // offset just past the last good data frame
	sealed bool   // a valid trailer follows the last data frame
	clean  bool   // nothing follows the last good frame (or the trailer)
}

// scanSegment reads a segment of size bytes whose first frame must carry
// seq first, and finds where its good frames end. It never fails on bad
// content: a bad header yields end 0, a torn or corrupt frame ends the scan.
// Only read errors are returned.
func scanSegment(r io.ReaderAt, size int64, first uint64) (scanResult, error) {
	res := scanResult{last: first - 1}
	hdr := make([]byte, fileHeaderLen)
	if _, err := r.ReadAt(hdr, 0); err != nil || !checkFileHeader(hdr) {
		if err != nil && err != io.EOF {
			return res, err
		}
		return res, nil
	}
	res.end = fileHeaderLen
	fr := frameReader{r: r, size: size}
	for off := int64(fileHeaderLen); ; {
		f, err := fr.at(off)
		if err != nil {
			res.clean = err == io.EOF
			if err == errTorn || err == errCorrupt || err == io.EOF {
				return res, nil
			}
			return res, err
		}
		if f.seq != res.last+1 && !(f.trailer && f.seq == res.last) {
			return res, nil
		}
		off += f.size()
		if f.trailer {
			res.sealed = true
			res.clean = off == size
			return res, nil
		}
		res.last, res.end = f.seq, off
	}
}
