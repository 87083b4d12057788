package queue

// ring is the memory part of a queue: the bytes of its items in one
// circular buffer and their lengths in a circular list of spans. It grows by
// doubling up to its limit, so that an idle queue costs almost nothing and a
// busy one stops allocating once it has reached the size it needs.
type ring struct {
	buf  []byte
	head int // offset in buf of the oldest item's first byte
	used int // bytes held

	spans []uint32 // lengths of the items, circular; len is a power of two
	sh    int      // index in spans of the oldest item
	count int      // items held

	rc   cursor // where the last seek ended, kept valid by pop and grow
	peak int    // most bytes held since the ring was last empty at release
}

const minRingBytes = 4 << 10

// push appends data, which must fit: len(buf)-used >= len(data) after grow.
func (r *ring) push(data []byte) {
	if r.count == len(r.spans) {
		r.growSpans()
	}
	r.spans[(r.sh+r.count)&(len(r.spans)-1)] = uint32(len(data))
	r.count++
	tail := r.head + r.used
	if tail >= len(r.buf) {
		tail -= len(r.buf)
	}
	n := copy(r.buf[tail:], data)
	copy(r.buf, data[n:])
	r.used += len(data)
	r.peak = max(r.peak, r.used)
}

// grow makes room for need more bytes if the limit allows, and reports
// whether there is room.
func (r *ring) grow(need, limit int) bool {
	if len(r.buf)-r.used >= need {
		return true
	}
	if r.used+need > limit {
		return false
	}
	size := min(max(2*len(r.buf), r.used+need, minRingBytes), limit)
	buf := make([]byte, size)
	a, b := r.halves(r.head, r.used)
	copy(buf[copy(buf, a):], b)
	r.buf, r.head = buf, 0
	r.rc = cursor{}
	return true
}

func (r *ring) growSpans() {
	spans := make([]uint32, max(2*len(r.spans), 64))
	for i := range r.count {
		spans[i] = r.spans[(r.sh+i)&(len(r.spans)-1)]
	}
	r.spans, r.sh = spans, 0
}

// halves returns the n bytes at off as up to two slices of buf.
func (r *ring) halves(off, n int) ([]byte, []byte) {
	if off+n <= len(r.buf) {
		return r.buf[off : off+n], nil
	}
	return r.buf[off:], r.buf[:off+n-len(r.buf)]
}

// front returns the oldest item as two slices of buf.
func (r *ring) front() ([]byte, []byte) {
	return r.halves(r.head, int(r.spans[r.sh]))
}

// pop removes the oldest item and returns its length.
func (r *ring) pop() int {
	n := int(r.spans[r.sh])
	r.sh = (r.sh + 1) & (len(r.spans) - 1)
	r.count--
	r.head += n
	if r.head >= len(r.buf) {
		r.head -= len(r.buf)
	}
	r.used -= n
	switch {
	case r.count == 0:
		r.head, r.rc = 0, cursor{}
	case r.rc.i > 0:
		r.rc.i--
	default:
		r.rc.off = r.head
	}
	return n
}

// cursor is a position among the items: item i (0 is the oldest) starts at
// offset off in buf.
type cursor struct {
	i   int // index from the oldest item
	off int // offset in buf of item i
}

// seek returns a cursor at item i, walking on from the last seek when it
// can, so that reading the items in order costs O(1) per item.
func (r *ring) seek(i int) cursor {
	if r.rc.i > i {
		r.rc = cursor{off: r.head}
	}
	for ; r.rc.i < i; r.rc.i++ {
		r.rc.off += int(r.spans[(r.sh+r.rc.i)&(len(r.spans)-1)])
		if r.rc.off >= len(r.buf) {
			r.rc.off -= len(r.buf)
		}
	}
	return r.rc
}

// at returns item c.i as two slices of buf.
func (r *ring) at(c cursor) ([]byte, []byte) {
	return r.halves(c.off, int(r.spans[(r.sh+c.i)&(len(r.spans)-1)]))
}

// release frees the buffers of an empty ring that grew beyond keep bytes
// for a burst, once it has been filled to no more than keep since: a queue
// that keeps needing the space keeps it, one back to a trickle returns it.
func (r *ring) release(keep int) {
	if r.count != 0 {
		return
	}
	if len(r.buf) > keep && r.peak <= keep {
		*r = ring{}
	}
	r.peak = 0
}
