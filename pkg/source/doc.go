// Package source delivers audit records into the daemon: from the kernel,
// as its registered audit daemon (Kernel), and the kernel's control calls
// (Control). The remote-logging listener source lives in package remote.
//
// Records are received on a socket of their own, never on the socket used
// for control calls, so that no record is discarded while a call waits for
// its reply (go-libaudit's client drops them).
package source
