package queue

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// segmentBytes builds a segment file starting at seq 1 holding items.
func segmentBytes(sealed bool, items ...string) []byte {
	b := make([]byte, fileHeaderLen)
	putFileHeader(b)
	for i, it := range items {
		b = appendFrame(b, uint64(i+1), []byte(it), nil, false)
	}
	if sealed {
		b = appendFrame(b, uint64(len(items)), nil, nil, true)
	}
	return b
}

func segmentSeeds() [][]byte {
	full := segmentBytes(true, "type=SYSCALL msg=audit(1.000:1): a", "", "type=EOE msg=audit(1.000:1): ")
	open := segmentBytes(false, "one", "two", "three")
	return [][]byte{
		full,
		open,
		open[:len(open)-3],                       // torn in a frame
		append(bytes.Clone(open), 0, 0, 0, 0, 0), // zeros after
		full[:fileHeaderLen],                     // header only
		nil,
		[]byte("AUQSPOOL\x02\x00\x00\x00\x00\x00\x00\x00"),                            // bad version
		append(segmentBytes(false, "a"), segmentBytes(false, "b")[fileHeaderLen:]...), // seq repeats
	}
}

// FuzzSegment feeds arbitrary bytes to the segment decoder, then to a queue
// that finds them as a spool segment after a crash. Neither may panic, and
// the queue must hand out exactly the frames the decoder accepts, in order.
func FuzzSegment(f *testing.F) {
	for _, s := range segmentSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := scanSegment(bytes.NewReader(b), int64(len(b)), 1)
		if err != nil {
			t.Fatalf("scanSegment: %v", err)
		}
		if res.end > int64(len(b)) || (res.last >= 1 && res.end < fileHeaderLen) {
			t.Fatalf("scanSegment = %+v for %d bytes", res, len(b))
		}
		var want [][]byte
		for off := int64(fileHeaderLen); off < res.end; {
			fr, err := decodeFrame(b[off:])
			if err != nil || fr.trailer || fr.seq != uint64(len(want)+1) {
				t.Fatalf("frame at %d below end %d: %+v, %v", off, res.end, fr, err)
			}
			want = append(want, fr.data)
			off += fr.size()
		}
		if uint64(len(want)) != res.last {
			t.Fatalf("decoded %d frames, scan says last is %d", len(want), res.last)
		}
		checkQueueReads(t, b, want)
	})
}

// checkQueueReads opens a queue on a spool holding segment b and reads it.
func checkQueueReads(t *testing.T, b []byte, want [][]byte) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := Open(dir, Limits{Memory: 1 << 10, Spool: 1 << 20}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	var got [][]byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		items, err := q.Read(ctx, 100)
		cancel()
		if err != nil {
			break
		}
		for _, it := range items {
			if it.Seq != uint64(len(got)+1) {
				t.Fatalf("read item %d after %d items", it.Seq, len(got))
			}
			got = append(got, bytes.Clone(it.Data))
		}
	}
	// The queue reads the frames the decoder accepts; only a trailer at
	// the end, which it trusts, can make it stop early (at the trailer's
	// last seq, or at a bad frame, counted corrupt).
	if len(got) > len(want) {
		t.Fatalf("read %d items, the decoder accepts %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("item %d is %q, want %q", i+1, got[i], want[i])
		}
	}
	if _, trusted := readTrailer(bytes.NewReader(b), int64(len(b)), 1); !trusted && len(got) != len(want) {
		t.Fatalf("read %d items, want %d", len(got), len(want))
	}
}
