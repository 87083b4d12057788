package hostlog

// Format is the log format: auditd's log_format.
type Format int

const (
	// Raw writes records as the kernel sent them.
	Raw Format = 1
	// Enriched appends, after a 0x1d byte, the interpreted values of
	// uid/gid, arch and syscall fields, as auditd's ENRICHED does.
	Enriched Format = 2
)
