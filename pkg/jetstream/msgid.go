package jetstream

import (
	"bytes"
	"strconv"
)

// eventID returns the SEC.MSEC:SERIAL of a record line's
// msg=audit(SEC.MSEC:SERIAL) header, or nil when it has none that reads
// as one.
func eventID(line []byte) []byte {
	i := bytes.Index(line, []byte("msg=audit("))
	if i < 0 {
		return nil
	}
	rest := line[i+len("msg=audit("):]
	j := bytes.IndexByte(rest, ')')
	if j <= 0 || j > 48 {
		return nil
	}
	id := rest[:j]
	colon, dot := false, false
	for k, c := range id {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && !colon && k > 0:
			dot = true
		case c == ':' && dot && !colon && k < len(id)-1:
			colon = true
		default:
			return nil
		}
	}
	if !colon {
		return nil
	}
	return id
}

// isDaemon reports whether a record line is one of the daemon's own
// (type=DAEMON_..., after an optional node=NAME). The kernel never sends
// those types (1200-1299: it refuses them from user space), and the
// daemon numbers its own records with a serial of its own, so the same
// SEC.MSEC:SERIAL may name a kernel event and a daemon record.
func isDaemon(line []byte) bool {
	if rest, ok := bytes.CutPrefix(line, []byte("node=")); ok {
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return false
		}
		line = rest[i+1:]
	}
	return bytes.HasPrefix(line, []byte("type=DAEMON_"))
}

// position is where an item stands in its event: the event's id, whether
// it is one of the daemon's own records, and the item's index among the
// event's records, counted from 0.
type position struct {
	event  string
	daemon bool
	index  int
}

// next returns the position of the record line that follows p in the
// queue, and the line's event id (nil if it has none). A daemon record
// and a kernel record are never of one event, whatever their ids.
func (p position) next(line []byte) (position, []byte) {
	ev := eventID(line)
	daemon := ev != nil && isDaemon(line)
	if ev != nil && p.event == string(ev) && p.daemon == daemon {
		return position{p.event, daemon, p.index + 1}, ev
	}
	return position{string(ev), daemon, 0}, ev
}

// appendMsgID appends the Nats-Msg-Id of a record: HOST:SEC.MSEC:SERIAL:INDEX
// for the kernel's, HOST:d:SEC.MSEC:SERIAL:INDEX for the daemon's own
// (their serials are counted apart). A line with no event id is named by
// its queue sequence instead, HOST:q:SEQ, which a spooled queue keeps
// across restarts. The three never meet: a kernel id goes on with a digit.
func appendMsgID(dst []byte, host string, p position, seq uint64) []byte {
	dst = append(dst, host...)
	if p.event == "" {
		dst = append(dst, ":q:"...)
		return strconv.AppendUint(dst, seq, 10)
	}
	if p.daemon {
		dst = append(dst, ":d"...)
	}
	dst = append(dst, ':')
	dst = append(dst, p.event...)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, int64(p.index), 10)
}
