package router

import (
	"bytes"
	"slices"

	"github.com/auditd-ns/auditd-ns/pkg/record"
	"github.com/auditd-ns/auditd-ns/pkg/view"
)

// objectType reports whether records of type t have a CONTAINER_ID that
// describes an object of the event (a signalled or traced task), not the
// task that caused it.
func objectType(t uint64) bool { return t == record.TypeObjPID }

// route copies one closed event to every container on its chain; pid is its
// SYSCALL record's pid= (-1: none).
func (r *Router) route(ev *record.Event, pid int64) {
	r.events.Add(1)
	if ev.Partial {
		r.partial.Add(1)
	}
	t := r.table.Load()
	if len(t.byName) == 0 {
		return
	}
	r.scan.Reset(ev)
	r.ends, r.cids, r.found = r.ends[:0], r.cids[:0], false
	if i := subjectContainerID(ev); i >= 0 {
		c := r.parsedCID(ev, i)
		r.sent = r.sent[:0]
		for k := range c.ends {
			for _, id := range c.chain(k) {
				if tn := t.byID[id]; tn != nil && !slices.Contains(r.sent, tn) {
					r.sent = append(r.sent, tn)
					r.copy(tn, ev, id, true)
				}
			}
		}
		if c.err != nil {
			r.badChain.Add(1)
		}
		clear(r.sent)
		return
	}
	tn := r.attribute(t, ev, pid)
	if tn == nil {
		r.unattributed.Add(1)
		return
	}
	for ; tn != nil; tn = t.parent[tn] {
		r.copy(tn, ev, 0, false)
	}
}

// subjectContainerID returns the index of the CONTAINER_ID record that
// qualifies the event's subject (not an OBJ_PID target), or -1.
func subjectContainerID(ev *record.Event) int {
	first := -1
	for i := range ev.Records {
		rec := &ev.Records[i]
		if rec.Type != record.TypeContainerID {
			continue
		}
		if first < 0 {
			first = i
		}
		v, _ := rec.Field("record")
		if n, ok := atou(v); !ok || !objectType(n) {
			return i
		}
	}
	return first
}

// cid is a CONTAINER_ID record of the event being routed, its chains
// parsed once for all the containers the event goes to.
type cid struct {
	rec        int      // its index in the event
	start, end int      // its contid= value, in the record's Data (0, 0: none)
	ids        []uint64 // the chains, one after another
	ends       []int    // chain k is ids[ends[k-1]:ends[k]]
	err        error    // a malformed chain; the chains before it are kept
}

func (c *cid) chain(k int) []uint64 {
	start := 0
	if k > 0 {
		start = c.ends[k-1]
	}
	return c.ids[start:c.ends[k]]
}

// parsedCID returns the event's CONTAINER_ID record i, parsed.
func (r *Router) parsedCID(ev *record.Event, i int) *cid {
	for k := range r.cids {
		if r.cids[k].rec == i {
			return &r.cids[k]
		}
	}
	if len(r.cids) < cap(r.cids) {
		r.cids = r.cids[:len(r.cids)+1] // reuse the slices of an old entry
	} else {
		r.cids = append(r.cids, cid{})
	}
	c := &r.cids[len(r.cids)-1]
	c.rec, c.start, c.end, c.ids, c.ends, c.err = i, 0, 0, c.ids[:0], c.ends[:0], nil
	rec := &ev.Records[i]
	start, end, ok := record.FieldSpan(rec.Text, "contid")
	if !ok {
		return c
	}
	v := rec.Text[start:end]
	head := len(rec.Data) - len(rec.Text) // Text ends Data
	c.start, c.end = head+start, head+end
	for rest := v; len(rest) > 0; {
		var one []byte
		one, rest = record.SplitChains(rest)
		ids, err := record.ParseChain(c.ids, one)
		if err != nil {
			c.err = err
			break
		}
		c.ids = ids
		c.ends = append(c.ends, len(c.ids))
	}
	return c
}

// settled reports whether an event may be routed as soon as it closes,
// without the delay. The delay lets the tracker learn of processes it has
// not seen yet, so only an event attributed by its pid waits, and only
// until the attributor says it has learnt everything up to the event's
// stamp. An event routed by its CONTAINER_ID chain, or with no pid at all,
// does not depend on the tracker. sysPID is the pid= of its SYSCALL record
// (-1: none).
func (r *Router) settled(ev *record.Event, sysPID int64) bool {
	if _, ok := eventPID(ev, sysPID); !ok {
		return true // attributed to nobody, now or later
	}
	if subjectContainerID(ev) >= 0 || r.opt.Attribute == nil {
		return true
	}
	return r.opt.Attribute.Settled(stamp(ev))
}

// stamp is the event's time, ns since the epoch.
func stamp(ev *record.Event) int64 {
	if len(ev.Records) == 0 {
		return 0
	}
	rec := &ev.Records[0]
	return int64(rec.Sec)*1e9 + int64(rec.Msec)*1e6
}

// attribute finds the deepest cgroup container of the event's process (see
// eventPID) when the event happened. The attributor remembers its answers
// by process and cgroup set, not by pid: a pid reused by a process in
// another container gets its own answer.
func (r *Router) attribute(t *table, ev *record.Event, sysPID int64) *Container {
	if r.opt.Attribute == nil || len(t.cgroups) == 0 {
		return nil
	}
	pid, ok := eventPID(ev, sysPID)
	if !ok || pid > 1<<32-1 {
		return nil
	}
	var ppid uint64
	if sys := ev.Find(record.TypeSyscall); sys != nil {
		ppid, _ = kernelUint(sys, "ppid")
	}
	if ppid > 1<<32-1 {
		ppid = 0
	}
	if i := r.opt.Attribute.Attribute(uint32(pid), uint32(ppid), stamp(ev), t.dirs); i >= 0 {
		return t.cgroups[i]
	}
	return nil
}

// eventPID is the pid an event is attributed by: sysPID, its SYSCALL
// record's pid= (-1: none), else the first pid= the kernel wrote in one of
// its records (never one inside a user message's msg='...' text).
func eventPID(ev *record.Event, sysPID int64) (uint64, bool) {
	if sysPID >= 0 {
		return uint64(sysPID), true
	}
	for i := range ev.Records {
		if v, ok := kernelUint(&ev.Records[i], "pid"); ok {
			return v, true
		}
	}
	return 0, false
}

// kernelUint returns the number in field name of rec, looked for only in
// the part of the text the kernel wrote: a user message's text (msg='...',
// written by whoever sent it) is cut off, so that a tenant's own message
// cannot name the pid or ppid it is attributed by.
func kernelUint(rec *record.Record, name string) (uint64, bool) {
	text := rec.Text
	for off := 0; ; {
		i := bytes.Index(text[off:], []byte("msg='"))
		if i < 0 {
			break
		}
		if i += off; i == 0 || text[i-1] == ' ' {
			text = text[:i]
			break
		}
		off = i + 1
	}
	v, ok := record.Field(text, name)
	if !ok {
		return 0, false
	}
	return atou(v)
}

// syscallPID reads pid= from the text of a SYSCALL record, whose fields
// before it the kernel writes as numbers (arch, syscall, success, exit,
// a0-a3, items, ppid): no quoted value there can hold " pid=".
func syscallPID(text []byte) (uint64, bool) {
	// Usually the first "p" is ppid's, and pid follows its value: no field
	// name before them has a "p", and their values are numbers and yes/no.
	// (per=, the personality, can come before them.)
	if i := bytes.IndexByte(text, 'p'); i > 0 && bytes.HasPrefix(text[i-1:], []byte(" ppid=")) {
		j := i + len("ppid=")
		for j < len(text) && text[j] >= '0' && text[j] <= '9' {
			j++
		}
		if v, ok := bytes.CutPrefix(text[j:], []byte(" pid=")); ok {
			return leadingUint(v)
		}
	}
	i := bytes.Index(text, []byte(" pid="))
	if i < 0 {
		return 0, false
	}
	return leadingUint(text[i+len(" pid="):])
}

// leadingUint reads the number that v starts with, up to a space or the end.
func leadingUint(v []byte) (uint64, bool) {
	if j := bytes.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return atou(v)
}

// copy pushes the event's records that tn's rules keep into tn's queue,
// all in one push. own is tn's contid when the event carries chains
// (trimmed at it). In the container view (tn.View() set) each line is
// translated into a buffer of the copy's own: its id fields are found
// once per event for all the copies (findFields), and a line none of
// whose values changes is pushed from the event's lines, as in the host
// view. ev is only read.
func (r *Router) copy(tn *Container, ev *record.Event, own uint64, chained bool) {
	var ns view.Namespaces
	var ses *view.Sessions
	if v := tn.view.Load(); v != nil {
		ns = v.ns
		ses = tn.ses.Load()
		noteSessions(ses, ev)
	}
	v, _ := tn.Rules().MatchScan(&r.scan)
	if !v.Keep {
		tn.filtered.Add(1)
		return
	}
	tn.events.Add(1)
	r.format(ev)
	r.trimmed, r.picks = r.trimmed[:0], r.picks[:0]
	var at int64
	if ns != nil {
		at = stamp(ev)
		r.findFields(ev)
	}
	for i := range ev.Records {
		rec := &ev.Records[i]
		if !v.Keeps(rec.Type) {
			continue
		}
		if rec.Type == record.TypeContainerID && chained {
			data := r.trim(ev, i, own)
			if data == nil {
				continue
			}
			start := len(r.trimmed)
			if ns == nil {
				r.trimmed = record.AppendLine(r.trimmed, r.opt.Node, rec.Type, data)
				r.picks = append(r.picks, pick{start, len(r.trimmed) - 1, true})
				continue
			}
			r.viewed = record.AppendLine(r.viewed[:0], r.opt.Node, rec.Type, data)
			line := r.viewed[:len(r.viewed)-1]
			r.cfields.Find(rec.Type, line)
			out, changed := r.cfields.Translate(r.trimmed, ns, at, ses)
			if !changed {
				out = append(r.trimmed, line...)
			}
			r.trimmed = out
			r.picks = append(r.picks, pick{start, len(r.trimmed), true})
			continue
		}
		start := 0
		if i > 0 {
			start = r.ends[i-1]
		}
		if ns != nil {
			// The line's node= and type= prefix holds no id field.
			at0 := len(r.trimmed)
			if out, changed := r.fields[i].Translate(r.trimmed, ns, at, ses); changed {
				r.trimmed = out
				r.picks = append(r.picks, pick{at0, len(r.trimmed), true})
				continue
			}
		}
		r.picks = append(r.picks, pick{start, r.ends[i] - 1, false})
	}
	// Slices into trimmed only now that it has stopped growing.
	items := r.items[:0]
	for _, p := range r.picks {
		if p.trimmed {
			items = append(items, r.trimmed[p.start:p.end])
		} else {
			items = append(items, r.lines[p.start:p.end])
		}
	}
	r.items = items
	if len(items) > 0 {
		tn.Queue.PushAll(items)
		tn.copies.Add(uint64(len(items)))
	}
}

// findFields finds, once per event, the id fields of each of its copy
// lines (format's), for the copies in a container view.
func (r *Router) findFields(ev *record.Event) {
	if r.found {
		return
	}
	r.found = true
	if cap(r.fields) < len(ev.Records) {
		r.fields = append(r.fields[:cap(r.fields)], make([]view.Fields, len(ev.Records)-cap(r.fields))...)
	}
	r.fields = r.fields[:len(ev.Records)]
	start := 0
	for i := range ev.Records {
		// The line without its \n.
		r.fields[i].Find(ev.Records[i].Type, r.lines[start:r.ends[i]-1])
		start = r.ends[i]
	}
}

// typeLogin is LOGIN: a task's login uid set, and its new session, ses=.
const typeLogin = 1006

// noteSessions notes in s the sessions the event's LOGIN records begin
// (their kernel-written ses=), whether or not the container's rules keep
// them: a session begun inside the container is its own either way.
func noteSessions(s *view.Sessions, ev *record.Event) {
	if s == nil {
		return
	}
	for i := range ev.Records {
		rec := &ev.Records[i]
		if rec.Type != typeLogin {
			continue
		}
		if v, ok := kernelUint(rec, "ses"); ok && v < 1<<32-1 {
			s.Begin(uint32(v))
		}
	}
}

// pick is one line of a container's copy: lines[start:end], or trimmed's.
type pick struct {
	start, end int
	trimmed    bool
}

// format makes the copy line of each of the event's records once, for all
// the containers it goes to.
func (r *Router) format(ev *record.Event) {
	if len(r.ends) == len(ev.Records) {
		return
	}
	r.lines = r.lines[:0]
	for i := range ev.Records {
		rec := &ev.Records[i]
		r.lines = record.AppendLine(r.lines, r.opt.Node, rec.Type, rec.Data)
		r.ends = append(r.ends, len(r.lines))
	}
}

// trim rewrites the event's CONTAINER_ID record i so that each chain in it
// ends at the container (own): the ids above it are cut, and chains the container
// is not on (another container sharing a network namespace, an object in
// another container) are left out. A record left with no chain, or with a
// malformed one, is left out of the copy (nil).
func (r *Router) trim(ev *record.Event, i int, own uint64) []byte {
	c := r.parsedCID(ev, i)
	if c.err != nil || c.end == 0 {
		return nil
	}
	data := ev.Records[i].Data
	r.data = append(r.data[:0], data[:c.start]...)
	n := 0
	for k := range c.ends {
		chain := c.chain(k)
		if j := slices.Index(chain, own); j >= 0 {
			if n > 0 {
				r.data = append(r.data, ',')
			}
			r.data = record.AppendChain(r.data, chain[:j+1])
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return append(r.data, data[c.end:]...)
}

func atou(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
