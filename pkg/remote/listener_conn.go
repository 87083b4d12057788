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
)

// peerConn is one accepted connection.
type peerConn struct {
	l    *Listener
	c    net.Conn
	d    *Decoder
	bw   *bufio.Writer
	hdr  []byte
	lerr rateLimit
}

// Read sets the deadline that fits the decoder's state, then reads: the
// frame timeout inside a frame, the idle timeout between frames.
func (p *peerConn) Read(b []byte) (int, error) {
	var dl time.Time
	if p.d.Buffered() > 0 {
		dl = time.Now().Add(orDefault(p.l.FrameTimeout, DefaultFrameTimeout))
	} else if p.l.IdleTimeout > 0 {
		dl = time.Now().Add(p.l.IdleTimeout)
	}
	p.c.SetReadDeadline(dl)
	return p.c.Read(b)
}

func (l *Listener) serve(c net.Conn) {
	defer l.forget(c)
	p := &peerConn{l: l, c: c, bw: bufio.NewWriterSize(c, 16<<10), lerr: rateLimit{every: 10 * time.Second}}
	p.d = NewDecoder(p, orDefault(l.MaxPayload, DefaultListenMaxPayload))
	err := p.loop()
	if ferr := p.flush(); err == nil {
		err = ferr
	}
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
	for i, c := range line {
		if c == '\n' || c == '\r' || c == 0 {
			line[i] = '?' // the decoder's buffer, discarded after this frame
		}
	}
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
	p.c.SetWriteDeadline(time.Now().Add(orDefault(p.l.FrameTimeout, DefaultFrameTimeout)))
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
	case errors.Is(err, os.ErrDeadlineExceeded) && p.d.Buffered() > 0:
		err = &FrameError{Offset: p.d.Offset(), Err: ErrShortFrame, Detail: fmt.Sprintf("frame incomplete after %v", orDefault(l.FrameTimeout, DefaultFrameTimeout))}
	case errors.Is(err, os.ErrDeadlineExceeded):
		l.log().Debug("closing idle connection", "peer", c.RemoteAddr())
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
