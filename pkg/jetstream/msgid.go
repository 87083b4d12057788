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

// position is where an item stands in its event: the event's id and the
// item's index among the event's records, counted from 0.
type position struct {
	event string
	index int
}

// next returns the position of the record line that follows p in the
// queue, and the line's event id (nil if it has none).
func (p position) next(line []byte) (position, []byte) {
	ev := eventID(line)
	if ev != nil && p.event == string(ev) {
		return position{p.event, p.index + 1}, ev
	}
	return position{string(ev), 0}, ev
}

// appendMsgID appends the Nats-Msg-Id of a record: HOST:SEC.MSEC:SERIAL:INDEX.
// A line with no event id is named by its queue sequence instead,
// HOST:q:SEQ, which a spooled queue keeps across restarts.
func appendMsgID(dst []byte, host string, p position, seq uint64) []byte {
	dst = append(dst, host...)
	if p.event == "" {
		dst = append(dst, ":q:"...)
		return strconv.AppendUint(dst, seq, 10)
	}
	dst = append(dst, ':')
	dst = append(dst, p.event...)
	dst = append(dst, ':')
	return strconv.AppendInt(dst, int64(p.index), 10)
}
