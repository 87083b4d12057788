package queue

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// recoverSegments loads the segment files of dir into sp, oldest first. A
// sealed segment is taken at its trailer's word; any other was being
// written when the daemon stopped: it is read through, cut back to its last
// good frame (a torn tail loses nothing before it) and sealed, or removed if
// it holds no good frame.
func (sp *spool) recoverSegments(log hclog.Logger) error {
	names, err := sp.d.Names()
	if err != nil {
		return err
	}
	var firsts []uint64
	for _, name := range names {
		num, ok := strings.CutSuffix(name, ".seg")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(num, 10, 64)
		if err != nil || first == 0 {
			log.Warn("ignoring a file that is not a spool segment", "path", filepath.Join(sp.dir, name))
			continue
		}
		firsts = append(firsts, first)
	}
	slices.Sort(firsts)
	for _, first := range firsts {
		s, err := sp.recoverSegment(first)
		if err != nil {
			return fmt.Errorf("recovering %s: %w", sp.path(first), err)
		}
		if s == nil {
			continue
		}
		if n := len(sp.segs); n > 0 && sp.segs[n-1].last >= s.first {
			log.Warn("ignoring a spool segment that overlaps the one before", "path", sp.path(first))
			continue
		}
		sp.segs = append(sp.segs, s)
		sp.bytes += s.size
	}
	return nil
}

// recoverSegment returns the segment starting at first, or nil if it held
// nothing and was removed.
func (sp *spool) recoverSegment(first uint64) (*segment, error) {
	f, err := sp.d.OpenFile(segName(first), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if last, ok := readTrailer(f, size, first); ok {
		return &segment{first: first, last: last, size: size}, nil
	}
	res, err := scanSegment(f, size, first)
	if err != nil {
		return nil, err
	}
	if res.last < first {
		return nil, sp.d.Remove(segName(first))
	}
	// Cut the torn tail and seal.
	if err := f.Truncate(res.end); err != nil {
		return nil, err
	}
	trailer := appendFrame(nil, res.last, nil, nil, true)
	if _, err := f.WriteAt(trailer, res.end); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	return &segment{first: first, last: res.last, size: res.end + frameHeaderLen}, nil
}

// readTrailer reads the trailer at the end of a sealed segment. A segment
// whose file header is not ours has no trailer to believe, whatever its
// last bytes say.
func readTrailer(r io.ReaderAt, size int64, first uint64) (uint64, bool) {
	if size < fileHeaderLen+2*frameHeaderLen {
		return 0, false
	}
	hdr := make([]byte, fileHeaderLen)
	if _, err := r.ReadAt(hdr, 0); err != nil || !checkFileHeader(hdr) {
		return 0, false
	}
	b := make([]byte, frameHeaderLen)
	if _, err := r.ReadAt(b, size-frameHeaderLen); err != nil {
		return 0, false
	}
	f, err := decodeFrame(b)
	if err != nil || !f.trailer || f.seq < first {
		return 0, false
	}
	// Every item takes at least a frame header: a trailer claiming more
	// items than fit is not believed.
	if items := f.seq - first + 1; items > uint64(size-fileHeaderLen-frameHeaderLen)/frameHeaderLen {
		return 0, false
	}
	return f.seq, true
}
