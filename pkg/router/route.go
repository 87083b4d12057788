package router

import (
	"bytes"

	"github.com/auditd-ns/auditd-ns/pkg/hostlog"
	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// objectTypes are records whose CONTAINER_ID describes an object of the
// event (a signalled or traced task), not the task that caused it.
func objectType(t uint64) bool { return t == 1318 } // OBJ_PID

// route copies one closed event to every tenant on its chain.
func (r *Router) route(ev *record.Event) {
	r.events.Add(1)
	if ev.Partial {
		r.partial.Add(1)
	}
	t := r.table.Load()
	if len(t.byName) == 0 {
		return
	}
	if cid := subjectContainerID(ev); cid != nil {
		chain, err := cid.Chain(r.chain[:0])
		r.chain = chain[:0]
		if err != nil {
			r.badChain.Add(1)
			return
		}
		for i, id := range chain {
			if tn := t.byID[id]; tn != nil {
				r.copy(tn, ev, chain[:i+1])
			}
		}
		return
	}
	tn := r.attribute(t, ev)
	if tn == nil {
		r.unattributed.Add(1)
		return
	}
	for ; tn != nil; tn = t.parent[tn] {
		r.copy(tn, ev, nil)
	}
}

// subjectContainerID returns the CONTAINER_ID record that qualifies the
// event's subject (not an OBJ_PID target), or nil.
func subjectContainerID(ev *record.Event) *record.Record {
	var first *record.Record
	for i := range ev.Records {
		rec := &ev.Records[i]
		if rec.Type != record.TypeContainerID {
			continue
		}
		if first == nil {
			first = rec
		}
		v, _ := rec.Field("record")
		if n, ok := atou(v); !ok || !objectType(n) {
			return rec
		}
	}
	return first
}

// attribute finds the deepest cgroup tenant of the event's process.
func (r *Router) attribute(t *table, ev *record.Event) *Tenant {
	if r.opt.Attribute == nil || len(t.cgroups) == 0 {
		return nil
	}
	pid, ok := fieldUint(ev, "pid")
	if !ok {
		return nil
	}
	if r.memoGen != t.gen || len(r.pidMemo) > 1<<16 {
		clear(r.pidMemo)
		r.memoGen = t.gen
	}
	if tn, ok := r.pidMemo[uint32(pid)]; ok {
		return tn
	}
	ppid, _ := fieldUint(ev, "ppid")
	var tn *Tenant
	if i := r.opt.Attribute(uint32(pid), uint32(ppid), t.dirs); i >= 0 {
		tn = t.cgroups[i]
	}
	r.pidMemo[uint32(pid)] = tn
	return tn
}

// copy pushes the event's records that tn's rules keep into tn's queue.
// chain is the event's chain trimmed at tn (nil on stock kernels).
func (r *Router) copy(tn *Tenant, ev *record.Event, chain []uint64) {
	v := tn.Rules().Match(ev)
	if !v.Keep {
		tn.filtered.Add(1)
		return
	}
	tn.events.Add(1)
	for i := range ev.Records {
		rec := &ev.Records[i]
		if !v.Keeps(rec.Type) {
			continue
		}
		data := rec.Data
		if rec.Type == record.TypeContainerID && chain != nil {
			if data = r.trim(rec, chain); data == nil {
				continue
			}
		}
		r.line = hostlog.AppendLine(r.line[:0], r.opt.Node, rec.Type, data)
		tn.Queue.Push(r.line[:len(r.line)-1])
		tn.copies.Add(1)
	}
}

// trim rewrites a CONTAINER_ID record so that its chain ends at the tenant:
// the ids above it are cut. A chain the tenant is not on (an object in
// another container) is left out of the copy (nil).
func (r *Router) trim(rec *record.Record, chain []uint64) []byte {
	own := chain[len(chain)-1]
	v, ok := rec.Field("contid")
	if !ok {
		return nil
	}
	var ids [32]uint64
	full, err := record.ParseChain(ids[:0], v)
	if err != nil {
		return nil
	}
	cut := -1
	for i, id := range full {
		if id == own {
			cut = i
			break
		}
	}
	if cut < 0 {
		return nil
	}
	if cut == len(full)-1 {
		return rec.Data
	}
	start := len(rec.Data) - len(rec.Text) + bytes.Index(rec.Text, v)
	r.data = append(r.data[:0], rec.Data[:start]...)
	r.data = record.AppendChain(r.data, full[:cut+1])
	r.data = append(r.data, rec.Data[start+len(v):]...)
	return r.data
}

func fieldUint(ev *record.Event, name string) (uint64, bool) {
	v, ok := ev.Field(name)
	if !ok {
		return 0, false
	}
	return atou(v)
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
