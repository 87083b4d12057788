package hostlog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/auditd-ns/auditd-ns/internal/beneath"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// batchSize is how many bytes of whole lines are collected before they are
// handed to the kernel in one write.
const batchSize = 64 << 10

// Stats counts what a Writer did. Dropped counts records that did not reach
// the file, by reason.
type Stats struct {
	Records        uint64
	Bytes          uint64
	Rotations      uint64
	Syncs          uint64
	DroppedSuspend uint64
	DroppedError   uint64
	RepairedBytes  int64
	Suspended      bool
	Size           int64
}

// Writer appends records to an auditd-format log file. It is safe for use by
// several goroutines; the daemon writes from one and rotates from another.
type Writer struct {
	mu         sync.Mutex // guards every field below
	opt        Options
	f          *os.File
	size       int64
	buf        []byte
	unsynced   int // records written to the kernel since the last sync
	suspended  bool
	spaceLevel int // 0 fine, 1 below space_left, 2 below admin_space_left
	lastCheck  time.Time
	halted     bool
	rotating   bool // set during rotation, so its own writes do not rotate again
	serial     uint64
	stats      Stats
	syncReq    chan struct{}
	syncDone   chan struct{}
	names      *nameCache
	dir        *beneath.Dir // the log's directory (see logDir)
	base       string       // the log's name in dir
}

// Open opens (or creates) the log at opt.Path for appending. A line torn by
// a crash at the end of an existing file is cut off, so the file holds only
// whole lines; Stats().RepairedBytes says how much was cut.
func Open(opt Options) (*Writer, error) {
	opt.setDefaults()
	w := &Writer{opt: opt, buf: make([]byte, 0, batchSize+16<<10), names: newNameCache()}
	if opt.Discard {
		return w, nil
	}
	if err := w.open(); err != nil {
		w.closeDir()
		return nil, err
	}
	if opt.Flush == FlushIncrementalAsync {
		w.syncReq = make(chan struct{}, 1)
		w.syncDone = make(chan struct{})
		go w.syncLoop()
	}
	return w, nil
}

func (w *Writer) open() error {
	dir, base, err := w.logDir()
	if err != nil {
		return err
	}
	f, err := dir.OpenFile(base, os.O_RDWR|os.O_CREATE|os.O_APPEND, w.opt.Mode)
	if err != nil {
		if errors.Is(err, beneath.ErrSymlink) {
			return fmt.Errorf("opening log %s: it is a symlink or has one on its way, refusing to follow it", w.opt.Path)
		}
		return fmt.Errorf("opening log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening log: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return fmt.Errorf("opening log %s: not a regular file", w.opt.Path)
	}
	if w.opt.Chown {
		if err := f.Chown(w.opt.UID, w.opt.GID); err != nil {
			f.Close()
			return fmt.Errorf("opening log %s: giving it to %d:%d: %w", w.opt.Path, w.opt.UID, w.opt.GID, err)
		}
	}
	cut, err := repairTail(f, st.Size())
	if err != nil {
		f.Close()
		return fmt.Errorf("opening log %s: repairing torn last line: %w", w.opt.Path, err)
	}
	if cut > 0 {
		w.stats.RepairedBytes += cut
		w.opt.Logger.Warn("cut a torn last line from the log", "path", w.opt.Path, "bytes", cut)
	}
	w.f, w.size = f, st.Size()-cut
	return nil
}

// repairTail truncates f after its last newline when it does not end in one.
func repairTail(f *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		start := max(end-int64(len(buf)), 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				keep := start + int64(i) + 1
				if keep == size {
					return 0, nil
				}
				return size - keep, f.Truncate(keep)
			}
		}
		end = start
	}
	return size, f.Truncate(0)
}

// Write appends the log line of one record.
func (w *Writer) Write(typ uint16, data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writeLocked(typ, data)
}

func (w *Writer) writeLocked(typ uint16, data []byte) error {
	keep := !w.opt.Discard && !w.suspended && !w.halted && w.f != nil
	if keep || w.opt.OnLine != nil {
		start := len(w.buf)
		w.buf = record.AppendLine(w.buf, w.opt.Node, typ, data)
		if w.opt.OnLine != nil && !(keep && w.tapping()) {
			w.opt.OnLine(w.buf[start : len(w.buf)-1])
		}
		if !keep {
			w.buf = w.buf[:start]
		}
	}
	if w.opt.Discard {
		w.stats.Records++
		return nil
	}
	if !keep {
		w.stats.DroppedSuspend++
		return nil
	}
	if w.opt.Format == Enriched {
		w.buf = appendEnriched(w.buf, data, w.names)
	}
	w.stats.Records++
	switch {
	case w.opt.Flush == FlushData || w.opt.Flush == FlushSync:
		return w.flushLocked()
	case len(w.buf) >= batchSize:
		return w.flushLocked()
	}
	return nil
}

// Flush hands buffered lines to the kernel and, depending on the flush
// mode, syncs them. The daemon calls it whenever its input goes idle.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flushLocked()
}

func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 || w.f == nil {
		return nil
	}
	records := countLines(w.buf)
	n, err := w.f.Write(w.buf)
	w.size += int64(n)
	w.stats.Bytes += uint64(n)
	if err != nil {
		return w.writeFailed(err, n)
	}
	w.reuse()
	w.unsynced += records
	if err := w.syncPolicy(); err != nil {
		return w.writeFailed(err, 0)
	}
	w.checkSpace()
	if w.opt.MaxLogFile > 0 && w.size >= w.opt.MaxLogFile && !w.rotating {
		w.sizeAction()
	}
	return nil
}

func (w *Writer) syncPolicy() error {
	switch w.opt.Flush {
	case FlushData:
		w.unsynced = 0
		w.stats.Syncs++
		return unix.Fdatasync(int(w.f.Fd()))
	case FlushSync:
		w.unsynced = 0
		w.stats.Syncs++
		return w.f.Sync()
	case FlushIncremental:
		if w.unsynced >= w.opt.Freq {
			w.unsynced = 0
			w.stats.Syncs++
			return unix.Fdatasync(int(w.f.Fd()))
		}
	case FlushIncrementalAsync:
		if w.unsynced >= w.opt.Freq {
			w.unsynced = 0
			select {
			case w.syncReq <- struct{}{}:
			default: // a sync is already pending; it covers these records
			}
		}
	}
	return nil
}

// syncLoop runs fdatasync in the background for FlushIncrementalAsync.
func (w *Writer) syncLoop() {
	defer close(w.syncDone)
	for range w.syncReq {
		w.mu.Lock()
		f := w.f
		w.stats.Syncs++
		w.mu.Unlock()
		if f == nil {
			continue
		}
		if rc, err := f.SyscallConn(); err == nil {
			rc.Control(func(fd uintptr) { unix.Fdatasync(int(fd)) })
		}
	}
}

// writeFailed applies disk_full_action or disk_error_action. The lines that
// could not be written are dropped and counted.
func (w *Writer) writeFailed(err error, written int) error {
	lost := countLines(w.buf[written:])
	w.reuse()
	if written > 0 && w.size > 0 {
		// Never leave a torn line: cut the file back to its last newline.
		if cut, rerr := repairTail(w.f, w.size); rerr == nil {
			w.size -= cut
		}
	}
	w.stats.DroppedError += uint64(lost)
	act, what := w.opt.DiskErrorAction, "disk error"
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		act, what = w.opt.DiskFullAction, "disk full"
	}
	w.opt.Logger.Error("writing the log failed", "what", what, "error", err, "lost", lost, "action", act.String())
	w.run(act, what)
	return fmt.Errorf("writing log %s: %w", w.opt.Path, err)
}

// tapping reports whether Tap takes the lines the log keeps.
func (w *Writer) tapping() bool { return w.opt.Tap != nil && w.opt.Format != Enriched }

// reuse empties the buffer once written, giving its lines to Tap.
func (w *Writer) reuse() {
	if w.tapping() {
		w.buf = w.opt.Tap(w.buf)[:0]
		return
	}
	w.buf = w.buf[:0]
}

func countLines(b []byte) int { return bytes.Count(b, []byte{'\n'}) }

// Stats returns a snapshot of the writer's counters.
func (w *Writer) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.stats
	s.Suspended, s.Size = w.suspended, w.size
	return s
}

// Path returns the log file's path.
func (w *Writer) Path() string { return w.opt.Path }

// Close flushes, syncs and closes the log.
func (w *Writer) Close() error {
	w.mu.Lock()
	err := w.flushLocked()
	if w.f != nil {
		err = errors.Join(err, w.f.Sync(), w.f.Close())
		w.f = nil
	}
	w.closeDir()
	w.mu.Unlock()
	if w.syncReq != nil {
		close(w.syncReq)
		<-w.syncDone
	}
	return err
}

// Reconfigure switches to new options (a reloaded config): buffered lines go
// to the old file, which is closed, and the new one is opened. If the new
// file cannot be opened the old one is reopened and the error returned.
func (w *Writer) Reconfigure(opt Options) error {
	opt.setDefaults()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	if w.f != nil {
		w.f.Sync()
		w.f.Close()
		w.f = nil
	}
	old := w.opt
	w.opt = opt
	w.closeDir()
	if opt.Discard {
		return nil
	}
	if err := w.open(); err != nil {
		w.opt = old
		w.closeDir()
		if old.Discard {
			return err
		}
		return errors.Join(err, w.open())
	}
	return nil
}

// WriteLine appends a line that is already in log format (a tenant's copy,
// or a record received from a remote auditd), without its newline. Embedded
// newlines, carriage returns and NULs are replaced by spaces, so one call is
// always one line. A record.Separator is kept: the line may be ENRICHED, and only
// the caller can tell an interpretation from a record's own text.
func (w *Writer) WriteLine(line []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := !w.opt.Discard && !w.suspended && !w.halted && w.f != nil
	if keep || w.opt.OnLine != nil {
		start := len(w.buf)
		w.buf = append(w.buf, line...)
		record.ReplaceLineBreaks(w.buf[start:])
		if w.opt.OnLine != nil && !(keep && w.tapping()) {
			w.opt.OnLine(w.buf[start:])
		}
		if !keep {
			w.buf = w.buf[:start]
		}
	}
	if w.opt.Discard {
		w.stats.Records++
		return nil
	}
	if !keep {
		w.stats.DroppedSuspend++
		return nil
	}
	w.buf = append(w.buf, '\n')
	w.stats.Records++
	if w.opt.Flush == FlushData || w.opt.Flush == FlushSync || len(w.buf) >= batchSize {
		return w.flushLocked()
	}
	return nil
}
