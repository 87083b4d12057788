package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// serveConn answers the requests of one connection until it ends, a
// request is too large, or ctx ends.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	pid := peerPID(c)
	log := s.log().With("peer_pid", pid)
	br := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(s.readTimeout()))
		if ctx.Err() != nil { // the AfterFunc's deadline may have been overwritten
			return
		}
		line, err := readLine(br, s.maxRequest())
		if errors.Is(err, errTooLarge) {
			log.Warn("control: request too large, closing the connection", "max", s.maxRequest())
			s.answer(c, &Response{Error: errorf("", CodeTooLarge, "request is longer than %d bytes; the connection is closed", s.maxRequest())})
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) || len(line) > 0 {
				log.Debug("control: connection ended mid-request", "error", err, "read", len(line))
			}
			return
		}
		resp := s.handle(ctx, pid, line)
		resp.V = Version
		if resp.Error != nil {
			log.Debug("control: refused", "error", resp.Error)
		}
		if err := s.answer(c, resp); err != nil {
			log.Debug("control: writing an answer", "error", err)
			return
		}
	}
}

func (s *Server) answer(c net.Conn, r *Response) error {
	c.SetWriteDeadline(time.Now().Add(s.writeTimeout()))
	return writeResponse(c, r)
}

func writeResponse(w io.Writer, r *Response) error {
	r.V = Version
	b, err := json.Marshal(r)
	if err != nil {
		b, _ = json.Marshal(&Response{V: Version, Error: errorf("", CodeInternal, "encoding the answer: %v", err)})
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// readLine reads one line, without its newline, of at most max bytes
// with the newline. A longer line is errTooLarge.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			return nil, errTooLarge
		}
		line = append(line, chunk...)
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

// peerPID is the pid of the process that connected (SO_PEERCRED), or 0.
func peerPID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}
