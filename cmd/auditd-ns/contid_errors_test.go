package main

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

// TestSetContidLimitErrors: the kernel's two limits (DESIGN.md "Kernel
// interface"; kernel-patches' cover letter) come back as errnos whose
// strerror text says nothing of containers ("too many links", "no space
// left on device"). The hook's error must name the limit. ENOSPC is
// real here: a write to /dev/full fails with it, through the same code
// that writes audit_containerid.
func TestSetContidLimitErrors(t *testing.T) {
	err := setContid("/dev/full", 42)
	if err == nil {
		t.Fatal("writing to /dev/full succeeded")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("error %q does not wrap ENOSPC", err)
	}
	for _, want := range []string{"42", "/dev/full", "network namespace", "16 containers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	err = contidWriteError(43, "/proc/7/audit_containerid", syscall.EMLINK)
	if !errors.Is(err, syscall.EMLINK) {
		t.Errorf("error %q does not wrap EMLINK", err)
	}
	for _, want := range []string{"43", "/proc/7/audit_containerid", "nest", "8"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// Other errnos keep their own text.
	err = contidWriteError(44, "/proc/7/audit_containerid", syscall.EBUSY)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), syscall.EBUSY.Error()) {
		t.Errorf("EBUSY: %q", err)
	}
}
