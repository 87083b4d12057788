package record

import "fmt"

// Namespace is a parsed NAMESPACE (1341) record: a namespace created
// (op=create, an auxiliary record of clone/clone3/unshare), a task moved to
// another one (op=change, of setns/unshare), or a namespace freed
// (op=destroy, an event of its own).
type Namespace struct {
	Op   string // "create", "change" or "destroy"
	Type string // as /proc/PID/ns names it: net, user, pid_for_children, ...
	// Ino is the namespace's inode number (create, destroy); ParentIno its
	// parent's, for user and pid namespaces (0 when absent).
	Ino, ParentIno uint64
	// OldIno and NewIno are the namespaces left and joined (change).
	OldIno, NewIno uint64
}

// ParseNamespace parses a NAMESPACE record.
func ParseNamespace(r *Record) (Namespace, error) {
	var ns Namespace
	if r.Type != TypeNamespace {
		return ns, fmt.Errorf("record type %d is not NAMESPACE (1341)", r.Type)
	}
	op, _ := r.Field("op")
	typ, ok := r.Field("type")
	if !ok || len(typ) == 0 {
		return ns, fmt.Errorf("NAMESPACE: no type= field")
	}
	ns.Type = string(typ)
	num := func(name string, dst *uint64, required bool) error {
		v, ok := r.Field(name)
		if !ok {
			if required {
				return fmt.Errorf("NAMESPACE op=%s: no %s= field", op, name)
			}
			return nil
		}
		n, used, ok := parseUint(v)
		if !ok || used != len(v) {
			return fmt.Errorf("NAMESPACE: %s=%q is not an inode number", name, v)
		}
		*dst = n
		return nil
	}
	var err error
	switch string(op) {
	case "create":
		ns.Op = "create"
		err = num("ino", &ns.Ino, true)
		if err == nil {
			err = num("parent_ino", &ns.ParentIno, false)
		}
	case "destroy":
		ns.Op = "destroy"
		err = num("ino", &ns.Ino, true)
	case "change":
		ns.Op = "change"
		err = num("old_ino", &ns.OldIno, true)
		if err == nil {
			err = num("new_ino", &ns.NewIno, true)
		}
	default:
		err = fmt.Errorf("NAMESPACE: op=%q is not create, change or destroy", op)
	}
	return ns, err
}
