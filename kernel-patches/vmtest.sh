#!/bin/bash
# vmtest.sh - boot a kernel under qemu with the in-guest tests as /init.
#
# Usage: vmtest.sh BZIMAGE [GUEST-ARGS...]
#        VMTEST_BASE=BASE-BZIMAGE vmtest.sh BZIMAGE
#   Builds kernel-patches/vmtest statically, packs it with busybox into an
#   initramfs, boots BZIMAGE with qemu (TCG: nested KVM does not work on
#   these machines) and waits for the summary line
#   "vmtest: N passed, M failed".  Exits 0 only if it appears with M = 0
#   before VMTEST_TIMEOUT seconds (default 600) and the console shows no
#   kernel warning, BUG, lockdep, KASAN or kmemleak report.  The serial
#   console is kept in $VMTEST_LOG (default: a file next to the initramfs).
#   With VMTEST_BASE, it runs the overhead comparison instead (make
#   kernel-bench): both kernels in instruction time, no functional tests.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
kernel=${1:?usage: vmtest.sh BZIMAGE [GUEST-ARGS...]}
shift
cache=${KERNEL_CACHE:-/var/cache/auditd-ns-kernel}
timeout=${VMTEST_TIMEOUT:-600}
work=$(mktemp -d "${TMPDIR:-/tmp}/vmtest.XXXXXX")
log=${VMTEST_LOG:-$cache/out/vmtest-$(basename "$kernel").log}
trap 'rm -rf "$work"' EXIT

busybox=$(command -v busybox || true)
if [ -z "$busybox" ] || ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
	busybox=/bin/busybox
fi
if [ ! -x "$busybox" ]; then
	echo "vmtest: static busybox missing: apt-get install busybox-static" >&2
	exit 1
fi

mkdir -p "$work/root/bin" "$work/root/proc" "$work/root/sys" "$work/root/dev" \
	"$work/root/tmp" "$(dirname "$log")"
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/root/init" ./kernel-patches/vmtest)
# auditd-ns itself, for the end-to-end test (skipped if it does not build).
if [ -d "$root/cmd/auditd-ns" ]; then
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$work/root/bin/auditd-ns" ./cmd/auditd-ns) ||
		echo "vmtest: auditd-ns does not build; its end-to-end test will skip" >&2
fi
mkdir -p "$work/root/etc"
echo 'root:x:0:0:root:/:/bin/sh' > "$work/root/etc/passwd"
echo 'root:x:0:' > "$work/root/etc/group"
cp "$busybox" "$work/root/bin/busybox"
ln -s busybox "$work/root/bin/sh"
# iptables-legacy and what it loads, for the netfilter test (optional).
if [ -x /usr/sbin/xtables-legacy-multi ]; then
	for f in /usr/sbin/xtables-legacy-multi $(ldd /usr/sbin/xtables-legacy-multi | grep -o '/[^ ]*') \
		/usr/lib/x86_64-linux-gnu/xtables/libxt_AUDIT.so \
		/usr/lib/x86_64-linux-gnu/xtables/libxt_standard.so \
		/usr/lib/x86_64-linux-gnu/xtables/libipt_icmp.so \
		/usr/lib/x86_64-linux-gnu/xtables/libxt_icmp.so; do
		[ -e "$f" ] || continue
		mkdir -p "$work/root$(dirname "$f")"
		cp -L "$f" "$work/root$f"
	done
	mkdir -p "$work/root/run" "$work/root/usr/lib"
	gcc -shared -fPIC -O2 -o "$work/root/usr/lib/noflock.so" "$here/noflock.c"
fi
# The real ausearch and its libraries, to check that it keeps each event
# whole (records/ausearch-groups-events; skipped without it).
if [ -x /usr/sbin/ausearch ]; then
	for f in /usr/sbin/ausearch $(ldd /usr/sbin/ausearch | grep -o '/[^ ]*'); do
		mkdir -p "$work/root$(dirname "$f")"
		cp -L "$f" "$work/root$f"
	done
	mkdir -p "$work/root/sbin"
	[ -e "$work/root/sbin/ausearch" ] || ln -s /usr/sbin/ausearch "$work/root/sbin/ausearch"
fi
(cd "$work/root" && find . | cpio -o -H newc --quiet) | gzip -1 > "$work/initramfs.gz"

# boot KERNEL LOG GUEST-ARGS...: boot once, serial console into LOG.
# With VMTEST_ICOUNT=1 the guest's clock counts instructions (qemu -icount
# shift=0: one nanosecond per instruction; sleep=off: idle time is
# skipped), so that its timings do not depend on the host's load.
boot() {
	local k=$1 l=$2 rc
	shift 2
	local icount=()
	if [ "${VMTEST_ICOUNT:-0}" = 1 ]; then icount=(-icount shift=0,sleep=off); fi
	echo "vmtest: booting $k${icount[*]:+ (${icount[*]})} (timeout ${timeout}s, serial log $l)"
	local t0
	t0=$(date +%s)
	set +e
	timeout --foreground -k 5 "$timeout" qemu-system-x86_64 -accel tcg -m 1024 -smp 1 \
		"${icount[@]}" -nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$k" -initrd "$work/initramfs.gz" \
		-append "console=ttyS0 panic=-1 oops=panic panic_on_warn=1 quiet loglevel=5 -- $*" \
		< /dev/null > "$l" 2>&1
	rc=$?
	set -e
	echo "vmtest: guest ran $(( $(date +%s) - t0 ))s, qemu exit $rc"
}

# Any kernel warning, bug, lockdep splat or leak report fails the run,
# whatever the tests said (panic_on_warn usually ends the boot first).
# Lockdep and RCU reports are printed at KERN_WARNING and do not panic:
# the guest boots with loglevel=5 so that they reach the console, and
# its first act writes a warning-level canary to /dev/kmsg, which must
# show (canary below) or the scan could not have seen them.
splats() {
	tr -d '\r' < "$1" | grep -E -A20 'WARNING:|BUG:|Oops|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|sleeping function called from invalid context|unreferenced object|KASAN:|KFENCE:|UBSAN:|refcount_t:' | head -60 || true
}
canary() {
	if ! tr -d '\r' < "$1" | grep -q 'vmtest-canary: warning-level kernel messages reach the console'; then
		echo "vmtest: the guest's KERN_WARNING canary is not in $1: lockdep and RCU reports would not be seen" >&2
		return 1
	fi
}
plogs=()
if [ -n "${VMTEST_BASE:-}" ]; then
	# The overhead comparison (make kernel-bench): the same loops on the
	# patched and the unpatched kernel, in instruction time, each kernel
	# booted VMTEST_OVERHEAD_ROUNDS times (default 2) to show that the
	# figures repeat.  No functional tests in these boots.  The boots run
	# side by side: in instruction time the host's load does not move
	# the figures, only how long they take.
	rounds=${VMTEST_OVERHEAD_ROUNDS:-2}
	export VMTEST_ICOUNT=1
	blogs=()
	for r in $(seq 1 "$rounds"); do
		blogs+=("${log%.log}-base-$r.log")
		boot "$VMTEST_BASE" "${blogs[-1]}" overhead &
		plogs+=("${log%.log}-overhead-$r.log")
		boot "$kernel" "${plogs[-1]}" overhead &
	done
	wait
	fig() { tr -d '\r' < "$1" | sed -n "s/^INFO overhead: $2 \([0-9.]*\) ns\/op/\1/p" | head -1; }
	status=0
	for kind in filtered recorded netns; do
		for who in nocontid contid contid8; do
			ratios=()
			for r in $(seq 1 "$rounds"); do
				base=$(fig "${blogs[r-1]}" "$kind nocontid")
				got=$(fig "${plogs[r-1]}" "$kind $who")
				[ -n "$base" ] && [ -n "$got" ] || continue
				ratio=$(echo "scale=4; $got / $base" | bc)
				ratios+=("$ratio")
				echo "vmtest: overhead round $r: $kind, task $who: $got patched, $base unpatched (instruction-ns/op), ratio $ratio"
			done
			[ ${#ratios[@]} -gt 0 ] || continue
			lo=$(printf '%s\n' "${ratios[@]}" | sort -n | head -1)
			hi=$(printf '%s\n' "${ratios[@]}" | sort -n | tail -1)
			spread=$(echo "scale=4; 100 * ($hi - $lo) / $lo" | bc)
			verdict=ok
			if [ "$(echo "$hi > 1.03" | bc)" = 1 ]; then verdict="over the 1.03 target"; fi
			echo "vmtest: overhead $kind, task $who: ratio $lo..$hi over ${#ratios[@]} rounds (spread $spread%): $verdict"
			if [ "$(echo "$spread > 1" | bc)" = 1 ]; then
				echo "vmtest: overhead $kind, task $who: the rounds differ by more than 1%" >&2
				status=1
			fi
		done
	done
	# The in-guest reader's share, measured apart (overhead.go).
	for l in "${blogs[@]}" "${plogs[@]}"; do
		tr -d '\r' < "$l" | sed -n "s|^INFO overhead-reader: |vmtest: $(basename "$l"): reader: |p"
	done
	for l in "${blogs[@]}" "${plogs[@]}"; do
		bad=$(splats "$l")
		if [ -n "$bad" ]; then
			echo "vmtest: the kernel reported a problem in $l:" >&2
			echo "$bad" >&2
			status=1
		fi
		if ! tr -d '\r' < "$l" | grep -q '^vmtest: [0-9]* passed, 0 failed'; then
			echo "vmtest: the overhead boot $l failed:" >&2
			tr -d '\r' < "$l" | grep -E '^(FAIL|vmtest:)' | head -20 >&2
			status=1
		fi
	done
	exit $status
fi

boot "$kernel" "$log" "$@"
tr -d '\r' < "$log" | grep -E '^(PASS|FAIL|SKIP|INFO|vmtest:)' || true
summary=$(tr -d '\r' < "$log" | grep -E '^vmtest: [0-9]+ passed, [0-9]+ failed' | tail -1 || true)

bad=$(splats "$log")
if [ -n "$bad" ]; then
	echo "vmtest: the kernel reported a problem in $log:" >&2
	echo "$bad" >&2
	exit 1
fi
canary "$log" || exit 1

if [ -z "$summary" ]; then
	echo "vmtest: no summary line (timeout or crash); last console lines:" >&2
	tr -d '\r' < "$log" | tail -40 >&2
	exit 1
fi
echo "$summary"
case "$summary" in
*" 0 failed"*) exit 0 ;;
*) exit 1 ;;
esac
