// Package bench measures auditd-ns side by side with the programs it
// replaces, on the same machine in the same run: the real auditd as the
// kernel's registered daemon, and audisp-remote as the sender of records
// to a tenant's auditd. It is not a place for micro-benchmarks; those live
// next to their packages.
//
// Everything is in TestIntegrationSideBySide, which runs only when
// AUDITD_NS_BENCH=1 (make bench sets it) because it takes minutes and
// registers with the kernel. It takes the machine-wide kernel test lock,
// restores the kernel's audit state afterwards, and rewrites the part of
// docs/BENCHMARKS.md between the "make bench" markers.
//
// bench/cmd/loadgen is the load generator (another process, since the
// kernel never audits the registered daemon's own syscalls) and
// bench/cmd/bareloop the read-and-discard limit.
package bench
