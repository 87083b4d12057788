package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
)

const (
	// wbufSize is how many bytes of frames a spool gathers before one
	// write.
	wbufSize = 64 << 10
	// minSegment and maxSegment bound the size of a segment, Spool/8: each
	// one sealed costs an fsync, each one dropped loses all its items.
	minSegment = 32 << 10
	maxSegment = 16 << 20
)

// segment is one spool file, named after its first seq.
type segment struct {
	first uint64
	last  uint64 // first-1 while empty, or when every frame was found bad
	size  int64  // bytes in the file, including those not yet written out
	dead  bool   // removed from the spool
}

func (s *segment) count() uint64 { return s.last + 1 - s.first }

// spool is the disk part of a queue: append-only segment files, oldest
// first. The newest, active segment gathers frames in wbuf and writes them
// out when wbuf fills, when the segment is sealed and at close. A sealed
// segment ends with a trailer and is fsynced by a goroutine, so that the
// producer never waits for the disk to confirm.
type spool struct {
	dir     string       // for messages
	d       *beneath.Dir // the directory, held open: every file is reached through it
	limit   int64        // Limits.Spool
	segSize int64        // a segment is sealed when it would grow beyond this
	segs    []*segment
	bytes   int64 // sum of segs' sizes

	active  *segment // nil when the next frame starts a new segment
	wf      *os.File // the active segment, for writing
	flushed int64    // bytes of the active segment written to wf
	wlast   uint64   // last seq written to wf
	wbuf    []byte

	rseg *segment // the segment being read, or nil
	rf   *os.File
	roff int64  // offset of the next frame to read in rseg
	rexp uint64 // seq the frame at roff must carry
	fr   frameReader

	syncs   sync.WaitGroup // the syncer goroutine, while it runs
	smu     sync.Mutex     // guards toSync and syncing
	toSync  []*os.File     // sealed segments waiting for fsync
	syncing bool           // a syncer goroutine runs
}

func newSpool(d *beneath.Dir, limit int64) *spool {
	return &spool{dir: d.Path(), d: d, limit: limit, segSize: min(max(limit/8, minSegment), maxSegment)}
}

// name is the file name of the segment whose first item is first.
func segName(first uint64) string { return fmt.Sprintf("%020d.seg", first) }

// path is the segment's path, for messages.
func (sp *spool) path(first uint64) string {
	return filepath.Join(sp.dir, segName(first))
}

// last returns the seq of the newest spooled item, and false if the spool
// holds none.
func (sp *spool) last() (uint64, bool) {
	for i := len(sp.segs) - 1; i >= 0; i-- {
		if s := sp.segs[i]; s.last >= s.first {
			return s.last, true
		}
	}
	return 0, false
}

// appendItem adds the item seq with data a+b to the active segment,
// starting a new segment first if needed: when it is full, or when seq does
// not follow its last (the items between were committed from memory), so
// that the seqs in a segment are always consecutive. On an error, the items (lost,
// seq] are gone: those not yet written out of the segment being written, and
// this one; the segment is cut back to what was written and closed.
func (sp *spool) appendItem(seq uint64, a, b []byte) (lost uint64, err error) {
	n := int64(frameHeaderLen + len(a) + len(b))
	if s := sp.active; s != nil && s.count() > 0 && (s.size+n+frameHeaderLen > sp.segSize || seq != s.last+1) {
		if err := sp.seal(); err != nil {
			return sp.failWrite(), err
		}
	}
	if sp.active == nil {
		if err := sp.start(seq); err != nil {
			return seq - 1, err
		}
	}
	sp.wbuf = appendFrame(sp.wbuf, seq, a, b, false)
	sp.active.last = seq
	sp.active.size += n
	sp.bytes += n
	if len(sp.wbuf) >= wbufSize {
		if err := sp.flush(); err != nil {
			return sp.failWrite(), err
		}
	}
	return 0, nil
}

// start creates the segment whose first item is seq.
func (sp *spool) start(seq uint64) error {
	f, err := sp.d.OpenFile(segName(seq), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("starting a spool segment: %w", err)
	}
	s := &segment{first: seq, last: seq - 1, size: fileHeaderLen}
	sp.segs = append(sp.segs, s)
	sp.bytes += fileHeaderLen
	sp.active, sp.wf, sp.flushed, sp.wlast = s, f, 0, seq-1
	if cap(sp.wbuf) == 0 {
		sp.wbuf = make([]byte, 0, wbufSize+frameHeaderLen+maxRecordHint)
	}
	sp.wbuf = sp.wbuf[:fileHeaderLen]
	putFileHeader(sp.wbuf)
	return nil
}

// maxRecordHint is the size of a long audit record, to size wbuf once.
const maxRecordHint = 9 << 10

// flush writes wbuf out to the active segment.
func (sp *spool) flush() error {
	if len(sp.wbuf) == 0 {
		return nil
	}
	if _, err := sp.wf.Write(sp.wbuf); err != nil {
		return fmt.Errorf("writing %s: %w", sp.wf.Name(), err)
	}
	sp.flushed += int64(len(sp.wbuf))
	sp.wlast = sp.active.last
	sp.wbuf = sp.wbuf[:0]
	return nil
}

// seal ends the active segment with a trailer, writes it out and has it
// fsynced in the background, by syncer.
func (sp *spool) seal() error {
	s := sp.active
	sp.wbuf = appendFrame(sp.wbuf, s.last, nil, nil, true)
	s.size += frameHeaderLen
	sp.bytes += frameHeaderLen
	if err := sp.flush(); err != nil {
		return err
	}
	sp.syncLater(sp.wf)
	sp.active, sp.wf = nil, nil
	return nil
}

// syncLater hands a sealed segment's file to the syncer goroutine, starting
// it if it does not run: one per queue at most, and none while idle.
func (sp *spool) syncLater(f *os.File) {
	sp.smu.Lock()
	defer sp.smu.Unlock()
	sp.toSync = append(sp.toSync, f)
	if !sp.syncing {
		sp.syncing = true
		sp.syncs.Add(1)
		go sp.syncer()
	}
}

// syncer fsyncs and closes the files handed to it, then the directory, and
// returns when there are no more. Errors are not reported: the data is
// written, and the next Open checks every frame it reads.
func (sp *spool) syncer() {
	defer sp.syncs.Done()
	for {
		sp.smu.Lock()
		fs := sp.toSync
		sp.toSync = nil
		if len(fs) == 0 {
			sp.syncing = false
			sp.smu.Unlock()
			return
		}
		sp.smu.Unlock()
		for _, f := range fs {
			f.Sync()
			f.Close()
		}
		sp.d.Sync() // errors ignored: the data is in the files
	}
}

// failWrite cuts the active segment back to what was written out after a
// write error and closes it without a trailer (Open will scan it). It
// returns the last seq kept; those after it that were in the segment are
// lost.
func (sp *spool) failWrite() uint64 {
	s := sp.active
	kept := sp.wlast
	sp.wf.Truncate(sp.flushed)
	sp.wf.Close()
	sp.bytes -= s.size - sp.flushed
	s.size, s.last = sp.flushed, kept
	sp.active, sp.wf, sp.wbuf = nil, nil, sp.wbuf[:0]
	if sp.rseg == s {
		sp.closeReader()
	}
	return kept
}

// dropHead removes the oldest segment and returns it.
func (sp *spool) dropHead() *segment {
	s := sp.segs[0]
	sp.segs[0] = nil
	sp.segs = sp.segs[1:]
	sp.bytes -= s.size
	s.dead = true
	if s == sp.active {
		sp.wf.Close()
		sp.active, sp.wf, sp.wbuf = nil, nil, sp.wbuf[:0]
	}
	if s == sp.rseg {
		sp.closeReader()
	}
	sp.d.Remove(segName(s.first))
	return s
}

// commit removes the segments whose items are all at or before seq.
func (sp *spool) commit(seq uint64) {
	for len(sp.segs) > 0 && sp.segs[0].last <= seq {
		sp.dropHead()
	}
}

// items counts the spooled items after seq committed.
func (sp *spool) items(committed uint64) uint64 {
	var n uint64
	for _, s := range sp.segs {
		if lo := max(s.first, committed+1); s.last >= lo {
			n += s.last - lo + 1
		}
	}
	return n
}

func (sp *spool) closeReader() {
	if sp.rf != nil {
		sp.rf.Close()
	}
	sp.rseg, sp.rf = nil, nil
}

// errYield says that next skipped its budget of bytes without finding the
// frame: the caller lets others take the lock, then calls again.
var errYield = errors.New("skipped enough for now")

// next returns the first spooled frame with a seq at or after want, or
// io.EOF if there is none. The frame's data is valid until the next call.
// errCorrupt (or a read error) means the segment being read, sp.rseg, has
// no good frame from sp.rexp on. Frames skipped (after a Rewind or Open,
// up to want) are taken from *budget; errYield when it runs out.
func (sp *spool) next(want uint64, budget *int) (frame, error) {
	for {
		if sp.rseg == nil || sp.rseg.dead || want > sp.rseg.last {
			if err := sp.openReader(want); err != nil {
				return frame{}, err
			}
		}
		sp.fr.size = sp.rseg.size
		f, err := sp.fr.at(sp.roff)
		if err == nil && (f.trailer || f.seq != sp.rexp) {
			err = errCorrupt
		}
		if err == io.EOF || err == errTorn {
			err = errCorrupt // the segment ends before its last item
		}
		if err != nil {
			return frame{}, err
		}
		sp.roff += f.size()
		sp.rexp++
		if f.seq >= want {
			return f, nil
		}
		if *budget -= int(f.size()); *budget <= 0 {
			return frame{}, errYield
		}
	}
}

// openReader points the reader at the start of the first segment holding
// an item at or after want.
func (sp *spool) openReader(want uint64) error {
	sp.closeReader()
	for _, s := range sp.segs {
		if s.last < want || s.last < s.first {
			continue
		}
		f, err := sp.d.OpenFile(segName(s.first), os.O_RDONLY, 0)
		if err != nil {
			sp.rseg, sp.rexp = s, s.first
			return err
		}
		sp.rseg, sp.rf, sp.roff, sp.rexp = s, f, fileHeaderLen, s.first
		sp.fr.reset(segReader{sp, s, f}, s.size)
		return nil
	}
	return io.EOF
}

// segReader reads a segment: from its file, and for the active segment
// from wbuf past what was written out.
type segReader struct {
	sp *spool
	s  *segment
	f  *os.File
}

func (r segReader) ReadAt(p []byte, off int64) (int, error) {
	if r.s != r.sp.active || off+int64(len(p)) <= r.sp.flushed {
		return r.f.ReadAt(p, off)
	}
	n := 0
	if off < r.sp.flushed {
		m, err := r.f.ReadAt(p[:r.sp.flushed-off], off)
		if err != nil {
			return m, err
		}
		n = m
	}
	start := off + int64(n) - r.sp.flushed
	if start >= int64(len(r.sp.wbuf)) {
		return n, io.EOF
	}
	n += copy(p[n:], r.sp.wbuf[start:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// close seals the active segment, fsynced before close returns, and waits
// for the background fsyncs. On an error the items (kept, to] are lost.
func (sp *spool) close() (kept, to uint64, err error) {
	if s := sp.active; s != nil {
		if err = sp.seal(); err != nil {
			to = s.last
			kept = sp.failWrite()
		}
	}
	sp.syncs.Wait()
	sp.closeReader()
	return kept, to, err
}
