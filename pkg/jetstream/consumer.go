package jetstream

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/remote"
)

// LineWriter is where a Consumer writes: *hostlog.Writer.
type LineWriter interface {
	// WriteLine appends one record line, without its newline.
	WriteLine(line []byte) error
	// Flush hands what was written to the file.
	Flush() error
}

// Consumer defaults.
const (
	DefaultBatch = 256
	// MaxLine is the longest record line a Consumer writes; a longer one is
	// cut, with " truncated=LEN" at its end. auditd's records are at most
	// about 8970 bytes.
	MaxLine  = 16 << 10
	fetchMax = time.Second
)

// Consumer reads a subject filter of a stream from a durable pull
// consumer and writes each record to an auditd-format log, prefixed with
// node=HOST, HOST being the last token of the message's subject (which the
// server's permissions let only that host publish to). A message is
// acknowledged only after its line was written and flushed.
type Consumer struct {
	Conn
	// Stream is the stream read.
	Stream string
	// Durable is the durable consumer's name. Run creates it, with
	// Filter, when the credentials allow, or else binds to it as the
	// server's admin made it.
	Durable string
	// Filter is the subject filter, audit.tenant.TENANT.> for a tenant.
	Filter string
	// Log receives the lines.
	Log LineWriter
	// Logger receives connection-level events. Nil means no logging.
	Logger hclog.Logger
	// Batch is the most messages fetched at a time. Zero means DefaultBatch.
	Batch int
	// SeqFile, when set, is a file where the consumer keeps, across
	// restarts, the stream sequence of the last message whose line it
	// wrote and flushed: rewritten after each flush, before the ack. A
	// message delivered again at or below it (its ack was lost: a
	// restart, a cut connection) is acknowledged without being written
	// again. Without it the same holds within one Run only.
	SeqFile string

	// ackWait is the durable's AckWait; zero means 30 s.
	ackWait time.Duration

	mu sync.Mutex
	st ConsumerStatus

	buf     []byte
	written uint64   // the stream sequence of the last message written and flushed
	seqF    *os.File // SeqFile, open
}

// ConsumerStatus is a snapshot of a Consumer.
type ConsumerStatus struct {
	URL, Stream, Durable, Filter string
	Connected                    bool
	// Written counts record lines written to the log; Acked counts the
	// messages acknowledged after their lines were written and flushed.
	Written, Acked uint64
	// Redelivered counts messages the server sent again: their earlier
	// delivery was not acknowledged in time (a crash, a slow write).
	Redelivered uint64
	// AlreadyWritten counts messages delivered again whose line had been
	// written and flushed (at or below SeqFile's sequence): acknowledged,
	// not written twice.
	AlreadyWritten uint64
	// Pending is the consumer's lag: the messages of its filter that
	// the stream holds beyond the last one fetched (the server's count,
	// as of that message).
	Pending uint64
	// LostNotices counts queue-lost notices written for hosts that dropped
	// copies.
	LostNotices uint64
	// Replaced counts lines in which line breaks or NULs were replaced.
	Replaced uint64
	// Truncated counts lines cut to MaxLine.
	Truncated uint64
	// Refused counts messages not written: a subject that is not
	// PREFIX.HOST with a valid host token.
	Refused       uint64
	Connects      uint64
	LastError     string
	LastErrorTime time.Time
}

// Status returns a snapshot of the consumer's state and counters.
func (c *Consumer) Status() ConsumerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.st
	st.URL, st.Stream, st.Durable, st.Filter = c.URL, c.Stream, c.Durable, c.Filter
	return st
}

func (c *Consumer) count(f func(*ConsumerStatus)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

func (c *Consumer) setErr(err error) {
	c.count(func(s *ConsumerStatus) { s.LastError, s.LastErrorTime = err.Error(), time.Now() })
}

// Check validates the consumer's settings without connecting.
func (c *Consumer) Check() error {
	switch {
	case c.URL == "":
		return errors.New("jetstream consumer: no url")
	case c.Stream == "":
		return errors.New("jetstream consumer: no stream")
	case c.Durable == "":
		return errors.New("jetstream consumer: no durable name")
	case c.Log == nil:
		return errors.New("jetstream consumer: no log")
	}
	if err := CheckName("durable", c.Durable); err != nil {
		return fmt.Errorf("jetstream consumer: %w", err)
	}
	if err := CheckName("stream", c.Stream); err != nil {
		return fmt.Errorf("jetstream consumer: %w", err)
	}
	if err := CheckFilter(c.Filter); err != nil {
		return fmt.Errorf("jetstream consumer: filter: %w", err)
	}
	return nil
}

// Run consumes until ctx ends, then returns nil. It returns an error for
// invalid settings or an unreadable credentials file; server errors
// (refused permissions among them) are retried with backoff and shown by
// Status.
func (c *Consumer) Run(ctx context.Context) error {
	if err := c.Check(); err != nil {
		return err
	}
	log := orNull(c.Logger)
	if c.SeqFile != "" {
		f, seq, err := openSeqFile(c.SeqFile)
		if f == nil {
			return fmt.Errorf("jetstream consumer: %w", err)
		}
		if err != nil {
			// Damaged: what the durable delivers again may be written twice.
			c.setErr(err)
			log.Warn("jetstream consumer: starting from the durable's acknowledged position", "error", err)
		}
		defer f.Close()
		c.seqF, c.written = f, seq
	}
	conn := c.Conn.named("auditd-ns consumer " + c.Durable)
	nc, err := conn.connect(connHooks{
		up:   func() { c.count(func(s *ConsumerStatus) { s.Connected = true; s.Connects++ }) },
		down: func(err error) { c.count(func(s *ConsumerStatus) { s.Connected = false }) },
		err:  func(err error) { c.setErr(err); log.Warn("jetstream connection error", "url", c.URL, "error", err) },
	})
	if err != nil {
		return fmt.Errorf("jetstream consumer: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream consumer: %w", err)
	}
	minB, maxB := conn.backoff()
	backoff := minB
	batch := c.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	var cons jetstream.Consumer
	for ctx.Err() == nil {
		if cons == nil {
			cons, err = c.bind(ctx, js)
		}
		if err == nil {
			err = c.fetch(ctx, cons, batch)
		}
		if err == nil || ctx.Err() != nil {
			backoff = minB
			continue
		}
		c.setErr(err)
		log.Warn("jetstream consume failed", "stream", c.Stream, "durable", c.Durable, "error", err, "retry_in", backoff)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			cons = nil
		}
		sleep(ctx, jitter(backoff))
		backoff = min(2*backoff, maxB)
	}
	return nil
}

// bind creates the durable consumer, or binds to it when creating it is
// not allowed.
func (c *Consumer) bind(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	cctx, cancel := context.WithTimeout(ctx, DefaultAckTimeout)
	defer cancel()
	cons, err := js.CreateOrUpdateConsumer(cctx, c.Stream, jetstream.ConsumerConfig{
		Durable:       c.Durable,
		FilterSubject: c.Filter,
		AckPolicy:     jetstream.AckAllPolicy,
		MaxAckPending: 4096,
		AckWait:       cmp.Or(c.ackWait, 30*time.Second),
	})
	if err == nil {
		return cons, nil
	}
	cons, err2 := js.Consumer(cctx, c.Stream, c.Durable)
	if err2 != nil {
		return nil, fmt.Errorf("creating consumer %s on %s: %v; binding to it: %w", c.Durable, c.Stream, err, err2)
	}
	return cons, nil
}

// fetch writes one batch and acknowledges it.
func (c *Consumer) fetch(ctx context.Context, cons jetstream.Consumer, n int) error {
	mb, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchMax))
	if err != nil {
		return err
	}
	var last jetstream.Msg
	acked, top := uint64(0), c.written
	for m := range mb.Messages() {
		md, mdErr := m.Metadata()
		if mdErr == nil && md.Sequence.Stream <= c.written {
			// Written and flushed before; its ack was lost.
			c.count(func(s *ConsumerStatus) { s.AlreadyWritten++; s.Redelivered++; s.Pending = md.NumPending })
			last = m
			acked++
			continue
		}
		if err := c.write(m); err != nil {
			return err
		}
		if mdErr == nil {
			top = max(top, md.Sequence.Stream)
			c.count(func(s *ConsumerStatus) {
				s.Pending = md.NumPending
				if md.NumDelivered > 1 {
					s.Redelivered++
				}
			})
		}
		last = m
		acked++
	}
	if err := mb.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		if last == nil {
			return err
		}
		c.setErr(err)
	}
	if last == nil {
		return ctx.Err()
	}
	if err := c.Log.Flush(); err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	if top > c.written {
		c.written = top
		if err := c.saveSeq(); err != nil {
			// The lines are written: acknowledged all the same; a
			// restart may write them again.
			c.setErr(err)
		}
	}
	// AckAll: one ack covers the batch.
	if err := last.Ack(); err != nil {
		return fmt.Errorf("acknowledging: %w", err)
	}
	c.count(func(s *ConsumerStatus) { s.Acked += acked })
	return nil
}

// write writes one message's record, with its lost notice first.
func (c *Consumer) write(m jetstream.Msg) error {
	subj := m.Subject()
	host := hostOf(subj)
	if host == subj || host == "" || CheckSubject(subj) != nil {
		c.count(func(s *ConsumerStatus) { s.Refused++ })
		return nil
	}
	data := stripNode(bytes.TrimSuffix(m.Data(), []byte("\n")))
	if lost := m.Headers().Get(LostHeader); lost != "" {
		if n, err := strconv.ParseUint(lost, 10, 64); err == nil && n > 0 {
			c.buf = append(c.buf[:0], "node="...)
			c.buf = append(c.buf, host...)
			c.buf = append(c.buf, ' ')
			c.buf = remote.LostNotice(c.buf, n, data, time.Now())
			if err := c.Log.WriteLine(c.buf); err != nil {
				return fmt.Errorf("writing the log: %w", err)
			}
			c.count(func(s *ConsumerStatus) { s.LostNotices++ })
		}
	}
	if v := m.Headers().Get(UnroutedHeader); v != "" {
		if u, ok := parseUnrouted(v); ok {
			c.buf = append(c.buf[:0], "node="...)
			c.buf = append(c.buf, host...)
			c.buf = append(c.buf, ' ')
			c.buf = remote.UnroutedNotice(c.buf, &u, data, time.Now())
			if err := c.Log.WriteLine(c.buf); err != nil {
				return fmt.Errorf("writing the log: %w", err)
			}
			c.count(func(s *ConsumerStatus) { s.LostNotices++ })
		}
	}
	if len(data) == 0 {
		return nil
	}
	c.buf = append(c.buf[:0], "node="...)
	c.buf = append(c.buf, host...)
	c.buf = append(c.buf, ' ')
	start := len(c.buf)
	c.buf = append(c.buf, data...)
	if record.CleanReceived(c.buf[start:]) {
		c.count(func(s *ConsumerStatus) { s.Replaced++ })
	}
	if len(c.buf)-start > MaxLine {
		n := len(data)
		c.buf = c.buf[:start+MaxLine-32]
		c.buf = strconv.AppendInt(append(c.buf, " truncated="...), int64(n), 10)
		c.count(func(s *ConsumerStatus) { s.Truncated++ })
	}
	if err := c.Log.WriteLine(c.buf); err != nil {
		return fmt.Errorf("writing the log: %w", err)
	}
	c.count(func(s *ConsumerStatus) { s.Written++ })
	return nil
}

// stripNode removes a leading node=NAME field: the consumer names the
// host itself, from the subject, and a host's own word for its name is not
// taken.
func stripNode(line []byte) []byte {
	for bytes.HasPrefix(line, []byte("node=")) {
		i := bytes.IndexByte(line, ' ')
		if i < 0 {
			return nil
		}
		line = line[i+1:]
	}
	return line
}

// seqLen is the length of SeqFile's content: a stream sequence in 20
// digits and a newline, rewritten in place.
const seqLen = 21

// openSeqFile opens (or creates) a consumer's SeqFile and reads its
// sequence. A file that does not hold one is an error naming it, with
// the file open (to be rewritten) and the sequence 0.
func openSeqFile(path string) (*os.File, uint64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("seq file: %w", err)
	}
	b := make([]byte, seqLen+1)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, 0, fmt.Errorf("seq file %s: %w", path, err)
	}
	if n == 0 {
		return f, 0, nil
	}
	seq, perr := strconv.ParseUint(string(bytes.TrimSuffix(b[:n], []byte("\n"))), 10, 64)
	if n != seqLen || b[seqLen-1] != '\n' || perr != nil {
		return f, 0, fmt.Errorf("seq file %s: not a stream sequence (%d bytes: %.24q)", path, n, b[:n])
	}
	return f, seq, nil
}

// saveSeq writes the last written sequence to SeqFile.
func (c *Consumer) saveSeq() error {
	if c.seqF == nil {
		return nil
	}
	b := fmt.Appendf(nil, "%020d\n", c.written)
	if _, err := c.seqF.WriteAt(b, 0); err != nil {
		return fmt.Errorf("seq file %s: %w", c.SeqFile, err)
	}
	return nil
}
