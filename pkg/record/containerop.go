package record

import (
	"fmt"
)

// ContainerOp is a parsed CONTAINER_OP (1020) record: a contid set on a
// task (op=set, failed attempts included: res=0) or dropped when the last
// task of a contid exits (op=drop).
type ContainerOp struct {
	Op string // "set" or "drop"
	// OPID is the target task for op=set, the exiting task for op=drop.
	OPID uint64
	// ContID is the chain after the operation (empty: unset), OldContID
	// the chain before it; both innermost first.
	ContID, OldContID []uint64
	// Result is the res= field: true for success; absent means success.
	Result bool
}

// ParseContainerOp parses a CONTAINER_OP record. It appends the chains to
// buf (which may be nil) to avoid allocating when buf has room.
func ParseContainerOp(r *Record, buf []uint64) (ContainerOp, error) {
	var op ContainerOp
	if r.Type != TypeContainerOp {
		return op, fmt.Errorf("record type %d is not CONTAINER_OP (1020)", r.Type)
	}
	v, ok := r.Field("op")
	if !ok || (string(v) != "set" && string(v) != "drop") {
		return op, fmt.Errorf("CONTAINER_OP: op= is %q, want set or drop", v)
	}
	if string(v) == "set" {
		op.Op = "set"
	} else {
		op.Op = "drop"
	}
	if v, ok = r.Field("opid"); !ok {
		return op, fmt.Errorf("CONTAINER_OP: no opid= field")
	}
	n, used, ok := parseUint(v)
	if !ok || used != len(v) {
		return op, fmt.Errorf("CONTAINER_OP: opid=%q is not a pid", v)
	}
	op.OPID = n
	var err error
	for _, f := range []struct {
		name string
		dst  *[]uint64
	}{{"contid", &op.ContID}, {"old-contid", &op.OldContID}} {
		v, ok := r.Field(f.name)
		if !ok {
			return op, fmt.Errorf("CONTAINER_OP: no %s= field", f.name)
		}
		start := len(buf)
		if buf, err = ParseChain(buf, v); err != nil {
			return op, fmt.Errorf("CONTAINER_OP: %s=: %w", f.name, err)
		}
		*f.dst = buf[start:len(buf):len(buf)]
	}
	op.Result = true
	if v, ok := r.Field("res"); ok {
		op.Result = string(v) == "1" || string(v) == "success"
	}
	return op, nil
}
