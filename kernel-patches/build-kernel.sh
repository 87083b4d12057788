#!/bin/bash
# build-kernel.sh - build the auditd-ns test kernel, cached by content.
#
# Usage: build-kernel.sh [--base] OUT
#   Unpacks Debian's linux-source-6.12 tarball, applies the series in
#   kernel-patches/series/*.patch (skipped with --base, which builds the
#   same config without the patches, for the overhead comparison), merges
#   kernel-patches/config over tinyconfig and builds a bzImage.  The
#   result is cached under $KERNEL_CACHE/<hash of tarball+series+config>,
#   so a second run only copies it to OUT.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
base=0
if [ "${1:-}" = --base ]; then base=1; shift; fi
out=${1:?usage: build-kernel.sh [--base] OUT}
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
cache=${KERNEL_CACHE:-/var/cache/auditd-ns-kernel}
jobs=${KERNEL_JOBS:-$(nproc)}

if [ ! -r "$tarball" ]; then
	echo "build-kernel: $tarball missing: apt-get install linux-source-6.12" >&2
	exit 1
fi

patches=()
if [ $base = 0 ]; then
	mapfile -t patches < <(ls "$here"/series/0*.patch 2>/dev/null | grep -v /0000- || true)
fi

key=$( {
	stat -c '%s %Y' "$tarball"
	cat "$here/config"
	for p in "${patches[@]}"; do cat "$p"; done
	echo "base=$base"
} | sha256sum | cut -c1-16)
dir=$cache/$key
mkdir -p "$cache"

if [ -f "$dir/bzImage" ]; then
	echo "build-kernel: cached $dir/bzImage"
	install -D -m 0644 "$dir/bzImage" "$out"
	exit 0
fi

start=$(date +%s)
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
echo "build-kernel: unpacking $tarball into $dir.tmp"
tar -C "$dir.tmp" --strip-components=1 -xf "$tarball"
cd "$dir.tmp"
for p in "${patches[@]}"; do
	echo "build-kernel: applying $(basename "$p")"
	patch -p1 --quiet --forward < "$p"
done

cc=gcc
if command -v ccache >/dev/null; then
	cc="ccache gcc"
	export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
	export CCACHE_BASEDIR=$dir.tmp
	export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
fi
# Reproducible names so ccache hits across build directories.
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=auditd-ns KBUILD_BUILD_HOST=vmtest

make -s CC="$cc" tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$here/config" >/dev/null
make -s CC="$cc" olddefconfig >/dev/null
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) sym=${line%%=*}
		if grep -q "^$sym=" .config; then echo "build-kernel: $sym not off" >&2; missing=1; fi ;;
	CONFIG_*=*)
		if ! grep -qx "$line" .config; then echo "build-kernel: $line did not stick" >&2; missing=1; fi ;;
	esac
done < "$here/config"
[ $missing = 0 ] || exit 1

echo "build-kernel: make -j$jobs bzImage (log in $dir.tmp/build.log)"
if ! make -j"$jobs" CC="$cc" bzImage > build.log 2>&1; then
	grep -E 'error|Error' build.log | head -40 >&2
	exit 1
fi
cd /
rm -rf "$dir"
mkdir -p "$dir"
cp "$dir.tmp/arch/x86/boot/bzImage" "$dir.tmp/.config" "$dir/"
rm -rf "$dir.tmp"
echo "build-kernel: built $dir/bzImage in $(( $(date +%s) - start ))s"
install -D -m 0644 "$dir/bzImage" "$out"
