package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// File is a Target that writes copies to a log file in auditd's format, on
// a volume the tenant reads.
type File struct {
	w   *hostlog.Writer
	log hclog.Logger

	// retry is the wait before writing again after a failed write.
	retry time.Duration

	mu    sync.Mutex // guards st
	st    Status
	acked uint64
}

var _ Target = (*File)(nil)

// FileOptions returns the writer options of a file target at path, from
// base (the host log's options: flush, rotation, format). The file is
// confined beneath the directory beneath (deliver.beneath), or else its own
// directory, opened once as the admin named it and held: no later symlink
// there is followed. Its disk actions are all ignore: a tenant's full volume
// must not stop anything else, and failed writes are retried from the queue.
func FileOptions(base hostlog.Options, path, beneath string, log hclog.Logger) hostlog.Options {
	opt := base
	opt.Path, opt.Node, opt.Logger = path, "", log
	opt.Beneath, opt.HoldDir = beneath, true
	opt.DiskFullAction = hostlog.Action{Kind: hostlog.ActionIgnore}
	opt.DiskErrorAction = hostlog.Action{Kind: hostlog.ActionIgnore}
	opt.SpaceLeftAction = hostlog.Action{Kind: hostlog.ActionIgnore}
	opt.AdminSpaceLeftAction = hostlog.Action{Kind: hostlog.ActionIgnore}
	opt.Halt = nil
	opt.Mode = 0o640
	return opt
}

// OpenFile opens a file target with the writer options opt (see
// FileOptions).
func OpenFile(opt hostlog.Options) (*File, error) {
	w, err := hostlog.Open(opt)
	if err != nil {
		return nil, err
	}
	log := opt.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &File{w: w, log: log, retry: time.Second}, nil
}

// Writer is the file target's writer (tests rotate it).
func (f *File) Writer() *hostlog.Writer { return f.w }

// fileBatch is the most copies the file target reads from its queue at a
// time (a Read also stops at 1 MiB). A target that fell behind catches up
// in reads of 1 MiB: one lock of the queue, one commit and one flush each.
// With 512 (about 70 KiB of copies) it took the queue's lock some 2,000
// times in a 5 s round of make bench, against the router pushing every
// event, and fell behind by the whole default queue.
const fileBatch = 8192

// Run writes r's copies to the file, committing what was written; a failed
// write is retried after a second (the queue keeps the copies).
func (f *File) Run(ctx context.Context, r queue.Reader) error {
	var notice []byte
	for {
		items, err := r.Read(ctx, fileBatch)
		if err != nil {
			return nil // ctx ended or the queue closed
		}
		var werr error
		for _, it := range items {
			if it.Lost > 0 {
				notice = remote.LostNotice(notice[:0], it.Lost, it.Data, time.Now())
				werr = errors.Join(werr, f.w.WriteLine(notice))
			}
			if it.Unrouted != nil {
				notice = remote.UnroutedNotice(notice[:0], it.Unrouted, it.Data, time.Now())
				werr = errors.Join(werr, f.w.WriteLine(notice))
			}
			werr = errors.Join(werr, f.w.WriteLine(it.Data))
		}
		if werr = errors.Join(werr, f.w.Flush()); werr != nil {
			f.setErr(werr)
			f.log.Warn("writing copies to the file target; will retry", "error", werr)
			r.Rewind()
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(f.retry):
			}
			continue
		}
		r.Commit(items[len(items)-1].Seq)
		f.mu.Lock()
		f.acked += uint64(len(items))
		f.mu.Unlock()
	}
}

func (f *File) setErr(err error) {
	f.mu.Lock()
	f.st.LastError, f.st.LastErrorTime = err.Error(), time.Now()
	f.mu.Unlock()
}

// Status reports the file target: always connected; Acked counts the copies
// written and committed.
func (f *File) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Connected, st.Acked = true, f.acked
	return st
}

// Close closes the file.
func (f *File) Close() error {
	if err := f.w.Close(); err != nil {
		return fmt.Errorf("closing the file target: %w", err)
	}
	return nil
}
