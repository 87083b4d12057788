#!/bin/bash
# build-kernel.sh - build the auditd-ns test kernel, cached by content.
#
# Usage: build-kernel.sh [--base] [--upto N] [--extra FRAGMENT] OUT
#   Builds Debian's linux-source-6.12 with the series in
#   kernel-patches/series/*.patch (none with --base, the baseline for the
#   overhead comparison; only the first N with --upto N, to check that
#   each patch builds on its own) and kernel-patches/config merged over
#   tinyconfig (then FRAGMENT, for a variant such as config-nons: its own
#   tree, named after the fragment), and copies the bzImage to OUT.
#
#   Finished images are cached under $KERNEL_CACHE/<hash of tarball,
#   series and config>, so a second run only copies.  Builds happen in a
#   persistent tree per flavour ($KERNEL_CACHE/tree-*): only files whose
#   content changes are rewritten, so make rebuilds just what depends on
#   them, and ccache (if installed) catches the rest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
flavour=series
upto=
extra=
while [ $# -gt 1 ]; do
	case "$1" in
	--base) flavour=base; shift ;;
	--upto) upto=$2; flavour=upto; shift 2 ;;
	--extra) extra=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
	*) break ;;
	esac
done
if [ -n "$extra" ]; then flavour=$flavour-$(basename "$extra"); fi
out=${1:?usage: build-kernel.sh [--base] [--upto N] OUT}
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
cache=${KERNEL_CACHE:-/var/cache/auditd-ns-kernel}
jobs=${KERNEL_JOBS:-$(nproc)}

if [ ! -r "$tarball" ]; then
	echo "build-kernel: $tarball missing: apt-get install linux-source-6.12" >&2
	exit 1
fi

patches=()
if [ "${flavour%%-*}" != base ]; then
	mapfile -t patches < <(ls "$here"/series/0*.patch 2>/dev/null | grep -v /0000- || true)
	if [ -n "$upto" ]; then patches=("${patches[@]:0:$upto}"); fi
fi

key=$( {
	stat -c '%s %Y' "$tarball"
	cat "$here/config"
	if [ -n "$extra" ]; then cat "$extra"; fi
	for p in "${patches[@]}"; do sed -n '/^---$/,$p' "$p"; done
	if [ "${flavour%%-*}" = base ]; then echo base=1; fi
} | sha256sum | cut -c1-16)
dir=$cache/$key
mkdir -p "$cache"

if [ -f "$dir/bzImage" ]; then
	echo "build-kernel: cached $dir/bzImage (${#patches[@]} patches)"
	install -D -m 0644 "$dir/bzImage" "$out"
	exit 0
fi

start=$(date +%s)
tree=${KERNEL_TREE:-$cache/tree-$flavour}
top=$(basename "$tarball" .tar.xz)
# A prefix build starts from the full series' tree: fewer files differ.
if [ "${flavour%%-*}" = upto ] && [ ! -f "$tree/.unpacked" ] && [ -f "$cache/tree-series/.unpacked" ]; then
	echo "build-kernel: seeding $tree from $cache/tree-series"
	rm -rf "$tree"
	cp -a "$cache/tree-series" "$tree"
fi
if [ ! -f "$tree/.unpacked" ]; then
	echo "build-kernel: unpacking $tarball into $tree"
	rm -rf "$tree"
	mkdir -p "$tree"
	tar -C "$tree" --strip-components=1 -xf "$tarball"
	: > "$tree/.series-files"
	touch "$tree/.unpacked"
fi

# Bring the tree to pristine + this series, rewriting only changed files.
files() { sed -n 's|^+++ b/||p; s|^--- a/||p' "$@" | sort -u; }
wanted=$(if [ ${#patches[@]} -gt 0 ]; then files "${patches[@]}"; fi)
all=$(printf '%s\n%s\n' "$wanted" "$(cat "$tree/.series-files")" | sed '/^$/d' | sort -u)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
if [ -n "$all" ]; then
	# shellcheck disable=SC2001
	tar -C "$scratch" --strip-components=1 -xf "$tarball" \
		$(echo "$all" | sed "s|^|$top/|") 2>/dev/null || true
	for p in "${patches[@]}"; do
		echo "build-kernel: applying $(basename "$p")"
		(cd "$scratch" && patch -p1 --quiet --forward < "$p")
	done
	changed=0
	for f in $all; do
		if [ -e "$scratch/$f" ]; then
			if ! cmp -s "$scratch/$f" "$tree/$f"; then
				mkdir -p "$(dirname "$tree/$f")"
				cp "$scratch/$f" "$tree/$f"
				changed=$((changed + 1))
			fi
		elif [ -e "$tree/$f" ]; then
			rm -f "$tree/$f"
			changed=$((changed + 1))
		fi
	done
	echo "build-kernel: $changed source files changed since the last build"
fi
echo "$wanted" > "$tree/.series-files"

cc=gcc
if command -v ccache >/dev/null; then
	cc="ccache gcc"
	export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
	export CCACHE_BASEDIR=$tree
	export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
fi
export KBUILD_BUILD_TIMESTAMP='Thu Jan  1 00:00:00 UTC 2026'
export KBUILD_BUILD_USER=auditd-ns KBUILD_BUILD_HOST=vmtest

cd "$tree"
[ -f .config ] && cp -p .config "$scratch/config.old"
make -s CC="$cc" tinyconfig >/dev/null
scripts/kconfig/merge_config.sh -m .config "$here/config" ${extra:+"$extra"} >/dev/null
make -s CC="$cc" olddefconfig >/dev/null
if [ -f "$scratch/config.old" ] && cmp -s .config "$scratch/config.old"; then
	cp -p "$scratch/config.old" .config
fi
missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) sym=${line%%=*}
		if grep -q "^$sym=" .config; then echo "build-kernel: $sym not off" >&2; missing=1; fi ;;
	CONFIG_*=*)
		if ! grep -qx "$line" .config; then echo "build-kernel: $line did not stick" >&2; missing=1; fi ;;
	esac
done < <(if [ -n "$extra" ]; then
	# the fragment's settings win over the main config's
	cat "$extra"
	grep -v -F -f <(sed -n 's/^\(CONFIG_[A-Za-z0-9_]*\)=.*/\1=/p' "$extra") "$here/config"
else
	cat "$here/config"
fi)
[ $missing = 0 ] || exit 1

echo "build-kernel: make -j$jobs bzImage (log in $tree/build.log)"
if ! make -j"$jobs" CC="$cc" bzImage > build.log 2>&1; then
	grep -E -B2 -A6 'error:|Error [0-9]' build.log | head -60 >&2
	exit 1
fi
if grep -E 'warning:' build.log | grep -E 'audit|proc/base|fork|exit|nsproxy|netfilter' >&2; then
	echo "build-kernel: the series adds compiler warnings" >&2
	exit 1
fi
mkdir -p "$dir.tmp"
cp arch/x86/boot/bzImage .config "$dir.tmp/"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "build-kernel: built $dir/bzImage in $(( $(date +%s) - start ))s"
install -D -m 0644 "$dir/bzImage" "$out"
