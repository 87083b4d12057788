package daemon

import (
	"bytes"
	"sync"

	"github.com/auditd-ns/auditd-ns/pkg/record"
)

// maxNamespaceEntries bounds the contids whose namespaces are remembered.
const maxNamespaceEntries = 65536

// namespaceBook remembers, for each contid set on a task, the namespace
// ids the kernel listed in the successful op=set CONTAINER_OP record
// (ns_dev=, ns_net=, ...), so that status can show what a container's first
// process had at registration.
type namespaceBook struct {
	mu    sync.Mutex // guards byID
	byID  map[uint64]map[string]string
	chain []uint64
}

// note looks at one record from the kernel; only CONTAINER_OP is read.
func (b *namespaceBook) note(typ uint16, data []byte) {
	if typ != record.TypeContainerOp {
		return
	}
	var r record.Record
	if record.Parse(&r, typ, data) != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	op, err := record.ParseContainerOp(&r, b.chain[:0])
	if err != nil || op.Op != "set" || !op.Result || len(op.ContID) == 0 {
		return
	}
	ns := map[string]string{}
	for _, f := range bytes.Fields(r.Text) {
		k, v, ok := bytes.Cut(f, []byte("="))
		if ok && bytes.HasPrefix(k, []byte("ns_")) {
			ns[string(k)] = string(v)
		}
	}
	if len(ns) == 0 {
		return
	}
	if b.byID == nil || len(b.byID) >= maxNamespaceEntries {
		b.byID = map[uint64]map[string]string{}
	}
	b.byID[op.ContID[0]] = ns
}

// of returns the namespaces recorded for contid, or nil.
func (b *namespaceBook) of(contid uint64) map[string]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.byID[contid]
}
