package main

import (
	"errors"
	"fmt"
	"syscall"
)

// The kernel series' limits (kernel-patches/cover-letter.txt, patches 1
// and 7): AUDIT_CONTID_DEPTH and AUDIT_CONTID_NETNS_MAX.
const (
	kernelContidDepth    = 8
	kernelContidNetnsMax = 16
)

// contidWriteError describes a failed write of id to path, naming the
// kernel's limit when the errno is one of them: their strerror texts
// ("too many links", "no space left on device") say nothing of
// containers. The errno stays in the chain for errors.Is.
func contidWriteError(id uint64, path string, err error) error {
	why := ""
	switch {
	case errors.Is(err, syscall.EMLINK):
		why = fmt.Sprintf(" (the new container would nest too deep: the kernel allows chains of at most %d container IDs)", kernelContidDepth)
	case errors.Is(err, syscall.ENOSPC):
		why = fmt.Sprintf(" (the task's network namespace already holds the %d containers the kernel allows in one network namespace)", kernelContidNetnsMax)
	}
	return fmt.Errorf("setting the audit container ID %d in %s: %w%s", id, path, err, why)
}
