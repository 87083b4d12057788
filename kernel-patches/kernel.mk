# kernel.mk - build and test the auditd-ns kernel patches.
#
# Use it on its own (make -f kernel-patches/kernel.mk vmtest) or from the
# top-level Makefile (include kernel-patches/kernel.mk, anywhere: it does
# not change the default goal).  Paths are relative to this file, so
# either works from any directory.
#
# Needs (Debian): linux-source-6.12 qemu-system-x86 bc flex bison
# libelf-dev libssl-dev ccache cpio busybox-static build-essential
# iptables, and Go.
#
#   kernel        patched bzImage, cached by series+config hash
#   kernel-base   the same config without the patches (overhead baseline)
#   vmtest        boot the patched kernel and run the in-guest tests, then
#                 time the overhead against kernel-base (VMTEST_OVERHEAD=0
#                 skips the baseline kernel and the timing)
#   vmtest-base   run the tests on the unpatched kernel (contid tests skip)
#   kernel-check  checkpatch every patch, then build each prefix of the series

KP_GOAL := $(.DEFAULT_GOAL)
KP_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
KERNEL_CACHE ?= /var/cache/auditd-ns-kernel
KERNEL_OUT ?= $(KERNEL_CACHE)/out
VMTEST_TIMEOUT ?= 900
VMTEST_OVERHEAD ?= 1
export KERNEL_CACHE VMTEST_TIMEOUT

.PHONY: kernel kernel-base vmtest vmtest-base kernel-check

kernel:
	$(KP_DIR)/build-kernel.sh $(KERNEL_OUT)/bzImage

kernel-base:
	$(KP_DIR)/build-kernel.sh --base $(KERNEL_OUT)/bzImage-base

ifeq ($(VMTEST_OVERHEAD),0)
vmtest: kernel
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage
else
vmtest: kernel kernel-base
	VMTEST_BASE=$(KERNEL_OUT)/bzImage-base $(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage
endif

vmtest-base: kernel-base
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage-base

kernel-check:
	$(KP_DIR)/check-series.sh

.DEFAULT_GOAL := $(KP_GOAL)
