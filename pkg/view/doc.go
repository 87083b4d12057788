// Package view translates the ids in a container's copy of a record from
// the host's view into the container's: pids as the container's pid
// namespace shows them, uids and gids as its user namespace maps them,
// sessions begun outside it unset. The host log is never touched: Rewrite
// appends a translated copy of a record's data to a buffer of the caller's.
//
// It is not for reading namespaces: a Namespaces is built by whoever knows
// the container's processes (pkg/procs reads NSpid and uid_map/gid_map).
//
// # Fields translated
//
// Only fields the kernel writes itself, by name, with a decimal value
// (6.12's kernel/audit.c, auditsc.c, security/lsm_audit.c, apparmor, and
// the container-ID patches):
//
//   - pids: pid, ppid, opid (SYSCALL, USER_*, LOGIN, OBJ_PID, CAPSET,
//     SECCOMP, ANOM_*, AVC, NETFILTER_CFG, CONTAINER_OP, CONTAINER_ID,
//     URINGOP, ...), audit_pid and the old= that follows it (CONFIG_CHANGE).
//     A pid not visible in the container's pid namespace becomes 0, as
//     getppid() shows a container init's parent.
//   - uids: uid, euid, suid, fsuid, auid, ouid (PATH, IPC, IPC_SET_PERM,
//     OBJ_PID, LSM records), oauid, old-auid, frootid and cap_frootid
//     (BPRM_FCAPS). Mapped through the user namespace's uid_map; an
//     unmapped uid becomes 65534, the overflow uid.
//   - gids: gid, egid, sgid, fsgid, ogid, through gid_map likewise.
//   - sessions: ses, old-ses, oses. A session not begun inside the
//     container (not in its Sessions) becomes unset. The router notes in
//     a container's Sessions the ses= of every LOGIN record routed to it,
//     and so to each container enclosing the one it began in.
//
// 4294967295 (and -1, as OBJ_PID prints it) means unset and stays as it
// is; a value that is not a decimal number is left alone. OBJ_PID's ids,
// which the kernel prints with %d, and any value written negative are
// printed signed (an unset session there reads -1). Everything else in the record is copied byte
// for byte, and a value that translates to itself keeps its exact bytes.
//
// # Text a tenant writes is never translated
//
// Fields are read with pkg/record's field walk, which keeps a double-quoted
// value (comm, exe, name, key, EXECVE arguments) whole; the kernel
// hex-encodes any such value that holds a space or a quote. A value in
// single quotes (msg='...', the text of a user message, which its sender
// writes in its own view) ends the translation: it is the last field the
// kernel writes, and everything after its opening quote is left as it is.
// The kernel writes each id field once in a record, so only the first
// field of a name is translated: a second one is in text that some LSM
// label or name put there. NETFILTER_CFG starts with table=NAME, whose
// name an nftables user chooses and the kernel does not escape: there only
// the last pid= (the kernel's, written after the name) is translated. In a
// SYSCALL record nothing after ses= is: the kernel writes comm, exe, subj
// (an LSM label, which may hold spaces) and key after it. Records of types
// with no id fields the kernel writes (EXECVE, PROCTITLE, CWD, SOCKADDR,
// EOE) are not walked at all: their values are quoted or hex, and only the
// kernel logs those types.
//
// # One walk per record
//
// Fields finds a record's id fields once; Translate then writes its copy
// for each container the record goes to, and appends nothing when no
// value changes (the router then pushes the record's own line).
//
// # ENRICHED copies
//
// Copies are raw record lines, and a file target writes them as they are
// (pkg/deliver's File goes through hostlog.Writer.WriteLine, which adds no
// interpretations even when log_format is ENRICHED). So nothing on the
// host names the translated ids: a tenant's ausearch -i or aureport reads
// them against the passwd and group files it sees, which in the container
// view are the tenant's own. Names in ENRICHED form written by auditd-ns
// for a tenant are out of scope.
package view
