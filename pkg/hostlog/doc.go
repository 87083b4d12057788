// Package hostlog writes the complete host audit log exactly as auditd does:
// one line per record, "type=NAME msg=audit(SEC.MSEC:SERIAL): TEXT", in the
// order records arrive, with auditd's flush modes, size-based rotation,
// disk-space checks and the actions auditd.conf offers for each.
//
// It knows nothing of containers. Package router feeds it before routing, and
// the same Writer serves the file delivery target of a container.
package hostlog
