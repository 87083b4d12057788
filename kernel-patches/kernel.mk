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
#   kernel-debug  the same with config-debug (lockdep, KASAN, kmemleak,
#                 DEBUG_ATOMIC_SLEEP)
#   kernel-base   the config without the patches (overhead baseline)
#   vmtest        boot kernel-debug and run the in-guest tests; fails on
#                 a failed test or any kernel report in the console
#                 (make test runs it; vmtest-debug is the same target)
#   vmtest-plain  the same tests on kernel, without the debugging options
#   kernel-bench  the overhead of the series: kernel against kernel-base
#                 (neither with debugging options), in instruction time
#                 (qemu -icount), two boots of each
#   vmtest-base   run the tests on the unpatched kernel (contid tests skip)
#   kernel-check  checkpatch every patch, then build each prefix of the
#                 series, and the series with config-nons

KP_GOAL := $(.DEFAULT_GOAL)
KP_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
KERNEL_CACHE ?= /var/cache/auditd-ns-kernel
KERNEL_OUT ?= $(KERNEL_CACHE)/out
VMTEST_TIMEOUT ?= 1500
export KERNEL_CACHE VMTEST_TIMEOUT

.PHONY: kernel kernel-debug kernel-base vmtest vmtest-debug vmtest-plain kernel-bench vmtest-base kernel-check

kernel:
	$(KP_DIR)/build-kernel.sh $(KERNEL_OUT)/bzImage

kernel-debug:
	$(KP_DIR)/build-kernel.sh --extra $(KP_DIR)/config-debug $(KERNEL_OUT)/bzImage-debug

kernel-base:
	$(KP_DIR)/build-kernel.sh --base $(KERNEL_OUT)/bzImage-base

# The functional tests run on the debug kernel (issue 16): its build takes
# about 25 minutes from nothing on two shared cores against 15-20 for the
# plain one, its run about 130 s against 30.
vmtest: vmtest-debug

vmtest-debug: kernel-debug
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage-debug

vmtest-plain: kernel
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage

kernel-bench: kernel kernel-base
	VMTEST_BASE=$(KERNEL_OUT)/bzImage-base $(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage

vmtest-base: kernel-base
	$(KP_DIR)/vmtest.sh $(KERNEL_OUT)/bzImage-base

kernel-check:
	$(KP_DIR)/check-series.sh

.DEFAULT_GOAL := $(KP_GOAL)
