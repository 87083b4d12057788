package record

import "fmt"

// Namespace is a parsed NAMESPACE (1341) record: a namespace created
// (op=create, an auxiliary record of clone/clone3/unshare), a task moved to
// another one (op=change, of setns/unshare), or a namespace freed
// (op=destroy, an event of its own).
//
// The fields are those of v2 of the kernel series: nstype= (not type=, which
// names the record type in the host log), inode=, parent_inode=, old_inode=
// and new_inode=, inode numbers as stat() of /proc/PID/ns/TYPE gives them.
type Namespace struct {
	Op   string // "create", "change" or "destroy"
	Type string // nstype=, as /proc/PID/ns names it: net, user, pid_for_children, ...
	// Inode is the namespace's inode number (create, destroy); ParentInode
	// its parent's, for user and pid namespaces (0 when absent).
	Inode, ParentInode uint64
	// OldInode and NewInode are the namespaces left and joined (change).
	OldInode, NewInode uint64
}

// ParseNamespace parses a NAMESPACE record.
func ParseNamespace(r *Record) (Namespace, error) {
	var ns Namespace
	if r.Type != TypeNamespace {
		return ns, fmt.Errorf("record type %d is not NAMESPACE (1341)", r.Type)
	}
	op, _ := r.Field("op")
	typ, ok := r.Field("nstype")
	if !ok || len(typ) == 0 {
		return ns, fmt.Errorf("NAMESPACE: no nstype= field")
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
		err = num("inode", &ns.Inode, true)
		if err == nil {
			err = num("parent_inode", &ns.ParentInode, false)
		}
	case "destroy":
		ns.Op = "destroy"
		err = num("inode", &ns.Inode, true)
	case "change":
		ns.Op = "change"
		err = num("old_inode", &ns.OldInode, true)
		if err == nil {
			err = num("new_inode", &ns.NewInode, true)
		}
	default:
		err = fmt.Errorf("NAMESPACE: op=%q is not create, change or destroy", op)
	}
	return ns, err
}
