// Package test holds end-to-end tests that need a real kernel audit
// subsystem, the real auditd tools (ausearch, aureport), or a VM. Tests that
// touch the kernel's audit state are named TestIntegration… and take
// testkernel's machine-wide lock.
//
// A test that counts records selects its own workload: rules on its own
// copy of a program (execRule) or its own pid (unameRule), keyed by
// testKey, and counts by that key while busyHost runs executions beside
// it. With AUDITD_NS_RACE=1 TestMain builds the daemon with -race, and a
// race report in a daemon's stderr fails the test (watchRaces).
package test
