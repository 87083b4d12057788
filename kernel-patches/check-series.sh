#!/bin/bash
# check-series.sh - checkpatch every patch, then build each prefix.
#
# Usage: check-series.sh [--no-build]
#   Runs scripts/checkpatch.pl from the pristine source on each patch of
#   kernel-patches/series (any error or warning fails), then builds the
#   kernel with patches 1..N for every N (build-kernel.sh --upto N), so
#   each patch is known to build on its own, and the whole series with
#   config-nons (namespace types that can be left out, left out).  Builds are incremental in
#   one persistent tree and cached, so a rerun is fast.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KERNEL_CACHE:-/var/cache/auditd-ns-kernel}
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
top=$(basename "$tarball" .tar.xz)

cp=$cache/checkpatch
if [ ! -x "$cp/scripts/checkpatch.pl" ]; then
	mkdir -p "$cp"
	tar -C "$cp" --strip-components=1 -xf "$tarball" \
		"$top/scripts/checkpatch.pl" "$top/scripts/spelling.txt" \
		"$top/scripts/const_structs.checkpatch"
fi

mapfile -t patches < <(ls "$here"/series/0*.patch | grep -v /0000-)
bad=0
for p in "${patches[@]}"; do
	out=$("$cp/scripts/checkpatch.pl" --no-tree --quiet "$p" 2>&1 || true)
	if [ -n "$out" ]; then
		echo "check-series: checkpatch: $(basename "$p"):" >&2
		echo "$out" >&2
		bad=1
	else
		echo "check-series: checkpatch clean: $(basename "$p")"
	fi
done
[ $bad = 0 ] || exit 1
[ "${1:-}" = --no-build ] && exit 0

# Longest prefix first: it starts closest to the full series' tree.
for n in $(seq ${#patches[@]} -1 1); do
	echo "check-series: building with patches 1..$n"
	"$here/build-kernel.sh" --upto "$n" "$cache/out/bzImage-upto-$n"
done
# Namespace types nsproxy leaves NULL when not configured (cgroup, ipc,
# time): the whole series without them.
echo "check-series: building with config-nons (no CGROUPS, SYSVIPC, POSIX_MQUEUE, TIME_NS)"
"$here/build-kernel.sh" --extra "$here/config-nons" "$cache/out/bzImage-nons"
echo "check-series: ${#patches[@]} patches, each clean and building, and without optional namespaces"
