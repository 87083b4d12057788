package jetstream

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditd-ns/auditd-ns/pkg/queue"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// Headers set on every message besides Nats-Msg-Id.
const (
	// LostHeader, when present, counts the copies the queue dropped just
	// before this message's record. A message with an empty body and this
	// header is a notice alone.
	LostHeader = "Auditd-Ns-Lost"
)

// Publisher defaults.
const (
	DefaultWindow = 512
	idleCommit    = 200 * time.Millisecond
)

// Publisher drains a queue to one JetStream subject. Set the fields, then
// call Run once; Status may be called at any time from any goroutine.
type Publisher struct {
	Conn
	// Subject is the literal subject published to, audit.host.HOST or
	// audit.tenant.TENANT.HOST (HostSubject, TenantSubject).
	Subject string
	// Stream, if set, is the stream that must take the messages: a
	// message the server would store elsewhere is refused (Nats-Expected-
	// Stream) and retried, and the error shows in Status.
	Stream string
	// Host names this host in each Nats-Msg-Id. "" means Subject's last
	// token.
	Host string
	// Queue is drained by Run. An item is committed only after the stream
	// acknowledged it.
	Queue queue.Reader
	// Logger receives connection-level events. Nil means no logging.
	Logger hclog.Logger
	// Window is the most messages awaiting their ack. Zero means
	// DefaultWindow.
	Window int
	// AckTimeout is how long a message may wait for its ack before the
	// unacknowledged ones are sent again. Zero means DefaultAckTimeout.
	AckTimeout time.Duration

	mu sync.Mutex // guards st
	st Status

	// idle is how long the queue may stay empty before an acknowledged
	// tail is committed; zero means idleCommit.
	idle time.Duration

	// Run's own state: the position of the last committed item, of the
	// last one read, and an acknowledged tail not yet committed because
	// its event may go on in the next batch.
	committed, cur position
	tailSeq        uint64
	tailPos        position
	msgID          []byte
}

// Status is a snapshot of a Publisher, as remote.SenderStatus is of a
// remote sender.
type Status struct {
	URL, Subject, Stream string
	Connected            bool
	// InFlight is the number of messages sent and not yet acknowledged.
	InFlight int
	// Published counts messages handed to the connection, sent again ones
	// included.
	Published uint64
	// Acked counts messages the stream acknowledged as new.
	Acked uint64
	// Duplicates counts messages the stream acknowledged as duplicates of
	// one it held: records sent again after a lost ack.
	Duplicates uint64
	// Retried counts messages sent again because an ack did not come.
	Retried uint64
	// Skipped counts EOE and empty records, which are not published.
	Skipped uint64
	// LostNotices counts messages that told of dropped copies.
	LostNotices uint64
	// Connects counts successful connections.
	Connects      uint64
	LastError     string
	LastErrorTime time.Time
}

// Status returns a snapshot of the publisher's state and counters.
func (p *Publisher) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.st
	st.URL, st.Subject, st.Stream = p.URL, p.Subject, p.Stream
	return st
}

func (p *Publisher) setErr(err error) {
	p.mu.Lock()
	p.st.LastError = err.Error()
	p.st.LastErrorTime = time.Now()
	p.mu.Unlock()
}

func (p *Publisher) hooks(log hclog.Logger) connHooks {
	return connHooks{
		up: func() {
			p.mu.Lock()
			p.st.Connected = true
			p.st.Connects++
			p.mu.Unlock()
			log.Debug("connected to jetstream", "url", p.URL, "subject", p.Subject)
		},
		down: func(err error) {
			p.mu.Lock()
			p.st.Connected = false
			p.mu.Unlock()
			if err != nil {
				p.setErr(err)
				log.Warn("jetstream connection lost", "url", p.URL, "error", err)
			}
		},
		err: func(err error) {
			p.setErr(err)
			log.Warn("jetstream connection error", "url", p.URL, "error", err)
		},
	}
}

// Check validates the publisher's settings without connecting.
func (p *Publisher) Check() error {
	switch {
	case p.URL == "":
		return errors.New("jetstream: no url")
	case p.Queue == nil:
		return errors.New("jetstream: no queue")
	case p.Window < 0:
		return fmt.Errorf("jetstream: window %d is negative", p.Window)
	}
	if err := CheckSubject(p.Subject); err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if p.Host != "" {
		if _, err := Token("host", p.Host); err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
	}
	return nil
}

// Run publishes until ctx ends or the queue is closed, then returns nil.
// It returns an error only for invalid settings or an unreadable
// credentials file; connection and stream errors are retried with
// backoff and shown by Status.
func (p *Publisher) Run(ctx context.Context) error {
	if err := p.Check(); err != nil {
		return err
	}
	log := orNull(p.Logger)
	window := p.Window
	if window == 0 {
		window = DefaultWindow
	}
	ackTimeout := p.AckTimeout
	if ackTimeout <= 0 {
		ackTimeout = DefaultAckTimeout
	}
	host := p.Host
	if host == "" {
		host = hostOf(p.Subject)
	}
	c := p.Conn.named("auditd-ns " + p.Subject)
	nc, err := c.connect(p.hooks(log))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4*window), jetstream.WithPublishAsyncTimeout(ackTimeout))
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	minB, maxB := c.backoff()
	backoff := minB
	for {
		readCtx, cancel := ctx, context.CancelFunc(func() {})
		if p.tailSeq != 0 {
			readCtx, cancel = context.WithTimeout(ctx, cmp.Or(p.idle, idleCommit))
		}
		items, err := p.Queue.Read(readCtx, window)
		cancel()
		switch {
		case ctx.Err() != nil || errors.Is(err, queue.ErrClosed):
			return nil
		case errors.Is(err, context.DeadlineExceeded):
			// Idle: the tail's event is over.
			p.commit(p.tailSeq, p.tailPos)
			continue
		case err != nil:
			p.setErr(err)
			log.Error("reading the queue", "subject", p.Subject, "error", err)
			sleep(ctx, backoff)
			continue
		}
		if err := p.publish(ctx, js, host, items); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.setErr(err)
			log.Warn("jetstream publish failed; sending the unacknowledged records again", "subject", p.Subject, "error", err, "retry_in", backoff)
			p.Queue.Rewind()
			p.cur, p.tailSeq = p.committed, 0
			sleep(ctx, jitter(backoff))
			backoff = min(2*backoff, maxB)
			continue
		}
		backoff = minB
	}
}

// pending is one item of a batch.
type pending struct {
	seq  uint64
	pos  position
	fut  jetstream.PubAckFuture // nil for an item not published
	sent bool
	skip bool // not to be published: done as it is
}

// publish sends one batch and waits for its acks. It commits what it can:
// every acknowledged item up to the last one whose event is known to be
// over (the next item starts another event), so that an event is never
// committed in part and its records keep their index after a restart.
func (p *Publisher) publish(ctx context.Context, js jetstream.JetStream, host string, items []queue.Item) error {
	batch := make([]pending, 0, len(items))
	var sendErr error
	for _, it := range items {
		pos, _ := p.cur.next(it.Data)
		p.cur = pos
		pd := pending{seq: it.Seq, pos: pos}
		data := bytes.TrimSuffix(it.Data, []byte("\n"))
		skip := len(data) == 0 || record.IsEOE(data)
		if skip {
			p.count(func(s *Status) { s.Skipped++ })
			if it.Lost == 0 {
				pd.skip = true
				batch = append(batch, pd)
				continue
			}
			data = nil // a notice alone
		}
		if sendErr == nil {
			msg := &nats.Msg{Subject: p.Subject, Data: data, Header: nats.Header{}}
			p.msgID = appendMsgID(p.msgID[:0], host, pos, it.Seq)
			msg.Header.Set(jetstream.MsgIDHeader, string(p.msgID))
			if it.Lost > 0 {
				msg.Header.Set(LostHeader, strconv.FormatUint(it.Lost, 10))
			}
			if p.Stream != "" {
				msg.Header.Set(jetstream.ExpectedStreamHeader, p.Stream)
			}
			pd.fut, sendErr = js.PublishMsgAsync(msg)
			pd.sent = sendErr == nil
			if pd.sent {
				p.count(func(s *Status) { s.Published++; s.InFlight++ })
			}
		}
		batch = append(batch, pd)
	}
	done, err := p.await(ctx, batch)
	if err == nil {
		err = sendErr
	}
	p.commitBatch(batch, done)
	if err != nil {
		unacked := 0
		for _, pd := range batch[done:] {
			if pd.sent {
				unacked++
			}
		}
		p.count(func(s *Status) { s.Retried += uint64(unacked) })
	}
	p.count(func(s *Status) { s.InFlight = 0 })
	return err
}

// await waits for the batch's acks in order and returns how many items,
// from the first, are done, and the error that stopped it.
func (p *Publisher) await(ctx context.Context, batch []pending) (int, error) {
	for i, pd := range batch {
		if pd.skip {
			continue
		}
		if pd.fut == nil {
			return i, nil // not sent: publish returns the send error
		}
		select {
		case ack := <-pd.fut.Ok():
			p.count(func(s *Status) {
				s.InFlight--
				if ack.Duplicate {
					s.Duplicates++
				} else {
					s.Acked++
				}
				if pd.fut.Msg().Header.Get(LostHeader) != "" {
					s.LostNotices++
				}
			})
		case err := <-pd.fut.Err():
			return i, err
		case <-ctx.Done():
			return i, ctx.Err()
		}
	}
	return len(batch), nil
}

// commitBatch commits the first done items of batch, up to the last one
// whose event is known to be over, and keeps the rest of the acknowledged
// items as the tail.
func (p *Publisher) commitBatch(batch []pending, done int) {
	if done == 0 {
		return
	}
	if batch[0].pos.index == 0 && p.tailSeq != 0 {
		p.commit(p.tailSeq, p.tailPos) // the tail's event ended before this batch
	}
	safe := -1
	for j := 0; j < done; j++ {
		if j+1 < len(batch) && batch[j+1].pos.index == 0 {
			safe = j
		}
	}
	if safe >= 0 {
		p.commit(batch[safe].seq, batch[safe].pos)
	}
	if last := batch[done-1]; done-1 > safe {
		p.tailSeq, p.tailPos = last.seq, last.pos
	}
}

// commit removes every item up to seq from the queue.
func (p *Publisher) commit(seq uint64, pos position) {
	if seq == 0 {
		return
	}
	p.Queue.Commit(seq)
	p.committed = pos
	if seq >= p.tailSeq {
		p.tailSeq = 0
	}
}

func (p *Publisher) count(f func(*Status)) {
	p.mu.Lock()
	f(&p.st)
	p.mu.Unlock()
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
