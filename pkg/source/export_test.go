package source

import "testing"

// Port and SendAudit let the black-box tests (package source_test, which
// may import internal/testkernel) send to a Kernel's socket.
func (k *Kernel) Port(t *testing.T) uint32 { return k.port(t) }

var SendAudit = sendAudit
