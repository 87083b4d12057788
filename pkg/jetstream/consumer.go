package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
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

	mu sync.Mutex
	st ConsumerStatus

	buf []byte
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
		AckWait:       30 * time.Second,
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
	acked := uint64(0)
	for m := range mb.Messages() {
		if err := c.write(m); err != nil {
			return err
		}
		if md, err := m.Metadata(); err == nil {
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
