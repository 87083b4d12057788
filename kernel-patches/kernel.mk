# kernel.mk - build and test the auditd-ns kernel patches.
#
# Use it on its own (make -f kernel-patches/kernel.mk vmtest) or from the
# top-level Makefile (include kernel-patches/kernel.mk).  Paths are taken
# relative to this file, so either works from any directory.
#
# Needs (Debian): linux-source-6.12 qemu-system-x86 bc flex bison
# libelf-dev libssl-dev ccache cpio busybox-static build-essential, and Go.
#
#   kernel        patched bzImage, cached by series+config hash
#   kernel-base   the same config without the patches (overhead baseline)
#   vmtest        boot the patched kernel and run the in-guest tests
#   vmtest-base   run the tests on the unpatched kernel (contid tests skip)
#   kernel-check  checkpatch every patch, then build each prefix of the series

KP_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
KERNEL_CACHE ?= /var/cache/auditd-ns-kernel
KERNEL_OUT ?= $(KERNEL_CACHE)/out
VMTEST_TIMEOUT ?= 900
export KERNEL_CACHE VMTEST_TIMEOUT

.PHONY: kernel kernel-base vmtest vmtest-base kernel-check

kernel:
	$(KP_DIR)/build-kernel.sh $(KERNEL_OUT)/bzImage

kernel-base:
	$(KP_DIR)/build-kernel.sh --base $(KERNEL_OUT)/bzImage-base

vmtest: kernel kernel-base
	VMTEST_BASE=$(KERNEL_OUT)/bzImage-base $(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage

vmtest-base: kernel-base
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage-base

kernel-check:
	$(KP_DIR)/check-series.sh
