#!/bin/bash
# vmtest.sh - boot a kernel under qemu with the in-guest tests as /init.
#
# Usage: vmtest.sh BZIMAGE [GUEST-ARGS...]
#   Builds kernel-patches/vmtest statically, packs it with busybox into an
#   initramfs, boots BZIMAGE with qemu (TCG: nested KVM does not work on
#   these machines) and waits for the summary line
#   "vmtest: N passed, M failed".  Exits 0 only if it appears with M = 0
#   before VMTEST_TIMEOUT seconds (default 600).  The serial console is
#   kept in $VMTEST_LOG (default: a file next to the initramfs).
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
boot() {
	local k=$1 l=$2 rc
	shift 2
	echo "vmtest: booting $k (timeout ${timeout}s, serial log $l)"
	local t0
	t0=$(date +%s)
	set +e
	timeout --foreground -k 5 "$timeout" qemu-system-x86_64 -accel tcg -m 1024 -smp 1 \
		-nographic -no-reboot -nodefaults -serial stdio \
		-kernel "$k" -initrd "$work/initramfs.gz" \
		-append "console=ttyS0 panic=-1 oops=panic panic_on_warn=1 quiet loglevel=4 -- $*" \
		< /dev/null > "$l" 2>&1
	rc=$?
	set -e
	echo "vmtest: guest ran $(( $(date +%s) - t0 ))s, qemu exit $rc"
}

boot "$kernel" "$log" "$@"
tr -d '\r' < "$log" | grep -E '^(PASS|FAIL|SKIP|INFO|vmtest:)' || true
summary=$(tr -d '\r' < "$log" | grep -E '^vmtest: [0-9]+ passed, [0-9]+ failed' | tail -1 || true)

# The overhead comparison: the same loops on the unpatched kernel, booted
# alternately with the patched one (TCG timing drifts with host load), the
# best of VMTEST_OVERHEAD_ROUNDS boots of each.
if [ -n "${VMTEST_BASE:-}" ] && [ -n "$summary" ]; then
	rounds=${VMTEST_OVERHEAD_ROUNDS:-3}
	plogs=("$log") blogs=()
	for r in $(seq 1 "$rounds"); do
		blogs+=("${log%.log}-base-$r.log")
		boot "$VMTEST_BASE" "${blogs[-1]}" overhead >/dev/null
		plogs+=("${log%.log}-overhead-$r.log")
		boot "$kernel" "${plogs[-1]}" overhead >/dev/null
	done
	best() {
		local what=$1
		shift
		cat "$@" | tr -d '\r' | sed -n "s/^INFO overhead: $what \([0-9]*\) ns\/op/\1/p" | sort -n | head -1
	}
	for kind in filtered recorded netns; do
		base=$(best "$kind nocontid" "${blogs[@]}")
		for who in nocontid contid; do
			got=$(best "$kind $who" "${plogs[@]}")
			if [ -n "$base" ] && [ -n "$got" ] && [ "$base" -gt 0 ]; then
				echo "vmtest: overhead $kind, task $who: $got ns/op patched," \
					"$base ns/op unpatched, ratio $(echo "scale=3; $got / $base" | bc)" \
					"(best of $rounds boots each)"
			fi
		done
	done
fi

# Any kernel warning, bug, lockdep splat or leak report fails the run,
# whatever the tests said (panic_on_warn usually ends the boot first).
splats() {
	tr -d '\r' < "$1" | grep -E -A20 'WARNING:|BUG:|Oops|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|sleeping function called from invalid context|unreferenced object|KASAN:|KFENCE:|UBSAN:|refcount_t:' | head -60 || true
}
for l in "$log" ${plogs[@]+"${plogs[@]}"}; do
	bad=$(splats "$l")
	if [ -n "$bad" ]; then
		echo "vmtest: the kernel reported a problem in $l:" >&2
		echo "$bad" >&2
		exit 1
	fi
done

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
