// Package test holds end-to-end tests that need a real kernel audit
// subsystem, the real auditd tools (ausearch, aureport), or a VM. Tests that
// touch the kernel's audit state are named TestIntegration… and take
// testkernel's machine-wide lock.
package test
