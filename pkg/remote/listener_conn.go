package remote

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// peerConn is one accepted connection.
type peerConn struct {
	l    *Listener
	c    net.Conn
	d    *Decoder
	bw   *bufio.Writer
	hdr  []byte
	lerr rateLimit
	// frameStart is when the first byte of the frame being read arrived;
	// zero between frames.
	frameStart time.Time
}

// Read sets the deadline that fits the decoder's state, then reads. Inside
// a frame the deadline is absolute: the whole frame must arrive within the
// frame timeout of its first byte, however the peer spreads it over reads
// (a peer dribbling a byte at a time is cut like a silent one). Between
// frames it is the idle timeout.
func (p *peerConn) Read(b []byte) (int, error) {
	now := time.Now()
	if p.frameStart.IsZero() && p.d.Buffered() > 0 {
		p.frameStart = now // the frame began with bytes read along with the last one
	}
	var dl time.Time
	if !p.frameStart.IsZero() {
		dl = p.frameStart.Add(p.l.frameTimeout())
	} else if t := p.l.idleTimeout(); t > 0 {
		dl = now.Add(t)
	}
	p.c.SetReadDeadline(dl)
	n, err := p.c.Read(b)
	if n > 0 && p.frameStart.IsZero() {
		p.frameStart = time.Now()
	}
	return n, err
}

func (l *Listener) serve(c net.Conn) {
	defer l.forget(c)
	if l.TLS != nil {
		tc, err := l.handshake(c)
		if err != nil {
			l.refuseTLS(c, err)
			return
		}
		c = tc
	}
	p := &peerConn{l: l, c: c, bw: bufio.NewWriterSize(c, 16<<10), lerr: rateLimit{every: 10 * time.Second}}
	p.d = NewDecoder(p, orDefault(l.MaxPayload, DefaultListenMaxPayload))
	err := p.loop() // why the peer left: never nil
	p.flush()       // the replies owed so far; its error adds nothing to err
	l.closed(p, err)
}

// loop handles frames until the peer leaves or misbehaves.
func (p *peerConn) loop() error {
	for {
		if p.d.Buffered() == 0 {
			// About to block: the peer gets every reply owed so far.
			if err := p.flush(); err != nil {
				return err
			}
		}
		f, err := p.d.Decode()
		if err != nil {
			return err
		}
		p.frameStart = time.Time{}
		switch f.Type {
		case TypeHeartbeat:
			p.l.ctr.heartbeats.Add(1)
			p.reply(TypeAck, f.Seq, "")
		case TypeMessage:
			p.message(f)
		default:
			return &FrameError{Offset: p.d.Offset(), Err: errUnexpected, Detail: fmt.Sprintf("%s frame %d from a client", f.Type, f.Seq)}
		}
	}
}

var errUnexpected = errors.New("unexpected frame type")

func (p *peerConn) message(f Frame) {
	line := f.Payload
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	record.CleanReceived(line) // the decoder's buffer, discarded after this frame
	if len(line) == 0 {
		p.reply(TypeAck, f.Seq, "")
		return
	}
	p.l.handleMu.Lock()
	err := p.l.Handle(line)
	p.l.handleMu.Unlock()
	if err == nil {
		p.l.ctr.records.Add(1)
		p.reply(TypeAck, f.Seq, "")
		return
	}
	p.l.ctr.handleErrors.Add(1)
	if p.lerr.allow(time.Now()) {
		p.l.log().Error("writing a received record", "peer", p.c.RemoteAddr(), "error", err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		p.reply(TypeDiskFull, f.Seq, "disk full")
	} else {
		p.reply(TypeDiskError, f.Seq, "disk write error")
	}
}

func (p *peerConn) reply(t Type, seq uint32, text string) {
	p.hdr = appendHeader(p.hdr[:0], t, len(text), seq)
	p.bw.Write(p.hdr) // errors surface in flush
	p.bw.WriteString(text)
}

func (p *peerConn) flush() error {
	if p.bw.Buffered() == 0 {
		return nil
	}
	p.c.SetWriteDeadline(time.Now().Add(p.l.frameTimeout()))
	if err := p.bw.Flush(); err != nil {
		return &OpError{Op: "write", Addr: p.c.RemoteAddr().String(), Err: err}
	}
	return nil
}

// closed logs why a connection ended and counts bad frames.
func (l *Listener) closed(p *peerConn, err error) {
	c := p.c
	var fe *FrameError
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		l.log().Debug("connection closed", "peer", c.RemoteAddr())
		return
	case errors.As(err, &fe):
	case errors.Is(err, os.ErrDeadlineExceeded) && !p.frameStart.IsZero():
		err = &FrameError{Offset: p.d.Offset(), Err: ErrShortFrame, Detail: fmt.Sprintf("frame incomplete %v after its first byte", l.frameTimeout())}
	case errors.Is(err, os.ErrDeadlineExceeded):
		l.ctr.idle.Add(1)
		l.log().Debug("closing idle connection", "peer", c.RemoteAddr(), "idle", l.idleTimeout())
		return
	default:
		l.log().Debug("connection failed", "peer", c.RemoteAddr(), "error", err)
		return
	}
	l.ctr.badFrames.Add(1)
	l.mu.Lock()
	ok := l.badLg.allow(time.Now())
	l.mu.Unlock()
	if ok {
		l.log().Warn("closing connection", "peer", c.RemoteAddr(), "reason", err)
	}
}
