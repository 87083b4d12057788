#!/bin/bash
# check-prefixes.sh - check that every prefix of the series compiles and
# links, object by object (make kernel-check; check-series.sh --full
# builds whole kernels instead).
#
# Usage: check-prefixes.sh [--nons]
#   A whole kernel per prefix is a rebuild of most of the tree each time
#   (patches 1 and 5 touch sched.h, five patches the uapi audit.h), about
#   as long as a first build; on two shared cores that is hours.  This
#   compiles instead, for the pristine source (N=0) and each prefix
#   1..N of the series, every file the series touches that the config
#   builds, with W=1, in one persistent tree (make rebuilds what a
#   prefix changed, ccache catches repeats), and fails on
#     - a compiler error;
#     - a warning the pristine source does not have (line numbers aside);
#     - a symbol that would not resolve at link time: referenced by the
#       compiled objects or by the rest of the (pristine) kernel, and
#       defined neither by the compiled objects nor by the rest of the
#       unpatched kernel (its vmlinux and lib.a archives, minus what the
#       touched files define there).
#   What it cannot see: an untouched file broken by a changed header
#   (the series only adds to headers the files it touches include).
#   With --nons, the whole series alone, in the config-nons tree
#   (tree-nons, the one kernel-check builds its config-nons kernel in)
#   (compile and warnings; its symbols are not checked, as there is no
#   unpatched config-nons kernel to check them against): a quicker
#   stand-in for the whole config-nons kernel that kernel-check builds.
#
#   Needs the plain and base kernels built (make kernel kernel-base).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${KERNEL_CACHE:-/var/cache/auditd-ns-kernel}
tarball=${KERNEL_TARBALL:-/usr/src/linux-source-6.12.tar.xz}
top=$(basename "$tarball" .tar.xz)
jobs=${KERNEL_JOBS:-$(nproc)}
nons=0
[ "${1:-}" = --nons ] && nons=1

mapfile -t patches < <(ls "$here"/series/0*.patch | grep -v /0000-)
base=$cache/tree-base
if [ $nons = 1 ]; then
	tree=${KERNEL_NONS_TREE:-$cache/tree-nons}
	from=$tree
else
	tree=$cache/tree-check
	from=$cache/tree-series
fi
if [ ! -f "$cache/tree-series/vmlinux" ] || [ ! -f "$base/vmlinux" ] || [ ! -f "$from/include/generated/autoconf.h" ]; then
	echo "check-prefixes: needs the plain and base kernels built (make kernel kernel-base) and, for --nons, its tree configured (make kernel-check builds it)" >&2
	exit 1
fi
if [ ! -f "$tree/.unpacked" ]; then
	echo "check-prefixes: copying $from to $tree"
	rm -rf "$tree"
	cp -a "$from" "$tree"
fi

files() { sed -n 's|^+++ b/||p; s|^--- a/||p' "$@" | sort -u; }
every=$(files "${patches[@]}")
# The files the plain config builds (the config-nons tree may not be
# built yet: the objects config-nons leaves out are named here).
objs=()
for f in $every; do
	case "$f" in *.c) [ -f "$cache/tree-series/${f%.c}.o" ] || continue ;; *) continue ;; esac
	if [ $nons = 1 ]; then
		case "$f" in ipc/namespace.c | kernel/cgroup/* | kernel/time/namespace.c) continue ;; esac
	fi
	objs+=("${f%.c}.o")
done

cc=gcc
if command -v ccache >/dev/null; then
	cc="ccache gcc"
	export CCACHE_DIR=${CCACHE_DIR:-$cache/ccache}
	export CCACHE_BASEDIR=$tree
	export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# bring N: the tree's files as the pristine source plus patches 1..N.
bring() {
	local n=$1 scratch=$work/src f
	rm -rf "$scratch"
	mkdir -p "$scratch"
	# shellcheck disable=SC2046
	tar -C "$scratch" --strip-components=1 -xf "$tarball" $(echo "$every" | sed "s|^|$top/|") 2>/dev/null || true
	for p in "${patches[@]:0:$n}"; do
		(cd "$scratch" && patch -p1 --quiet --forward < "$p")
	done
	for f in $every; do
		if [ -e "$scratch/$f" ]; then
			cmp -s "$scratch/$f" "$tree/$f" || cp "$scratch/$f" "$tree/$f"
		else
			rm -f "$tree/$f"
		fi
	done
}

# compile N: make the objects with W=1; prints the normalized warnings
# to $work/warn-N.
compile() {
	local n=$1
	if ! (cd "$tree" && make -s -j"$jobs" CC="$cc" W=1 "${objs[@]}") > "$work/log-$n" 2>&1; then
		echo "check-prefixes: patches 1..$n: the build fails:" >&2
		grep -E -A5 'error:|Error [0-9]' "$work/log-$n" | head -40 >&2
		return 1
	fi
	grep 'warning:' "$work/log-$n" | sed -E 's/:[0-9]+:[0-9]+: /: /' | sort -u > "$work/warn-$n" || true
}

syms() { nm "$@" 2>/dev/null | awk 'NF==3 && $2 ~ /^[A-Z]$/ && $2 != "U" {print $3}'; }

if [ $nons = 0 ]; then
	# The rest of the unpatched kernel: what it defines and references.
	(cd "$base" && ar t vmlinux.a) | grep -v -x -F -f <(printf '%s\n' "${objs[@]}") > "$work/others"
	(cd "$base" && xargs nm -u --format=just-symbols < "$work/others") | sort -u > "$work/others-undef"
	(cd "$base" && syms "${objs[@]}") | sort -u > "$work/touched-def"
	{ syms "$base/vmlinux"; syms "$base/lib/lib.a" "$base/arch/x86/lib/lib.a"; } | sort -u |
		comm -23 - "$work/touched-def" > "$work/others-def"
	first=0
else
	first=${#patches[@]}
fi

start=$(date +%s)
status=0
for n in $(seq "$first" ${#patches[@]}); do
	t0=$(date +%s)
	bring "$n"
	compile "$n" || { status=1; continue; }
	if [ "$n" = "$first" ] && [ $nons = 0 ]; then
		cp "$work/warn-$n" "$work/warn-base"
	elif [ $nons = 1 ]; then
		# config-nons: the warnings of the touched files' pristine
		# versions are not known here; any warning on a line the
		# series adds would need a pristine nons build, so report all.
		cp "$work/warn-$n" "$work/warn-base.nons"
	fi
	if [ $nons = 0 ]; then
		new=$(comm -13 "$work/warn-base" "$work/warn-$n")
		if [ -n "$new" ]; then
			echo "check-prefixes: patches 1..$n: new warnings:" >&2
			echo "$new" >&2
			status=1
		fi
		(cd "$tree" && nm -u --format=just-symbols "${objs[@]}") | cat - "$work/others-undef" | sort -u > "$work/undef-$n"
		(cd "$tree" && syms "${objs[@]}") | cat - "$work/others-def" | sort -u > "$work/def-$n"
		missing=$(comm -23 "$work/undef-$n" "$work/def-$n")
		if [ -n "$missing" ]; then
			echo "check-prefixes: patches 1..$n: symbols nothing defines:" >&2
			echo "$missing" >&2
			status=1
		fi
	else
		if [ -s "$work/warn-$n" ]; then
			echo "check-prefixes: config-nons: warnings (compare with the pristine source by hand):" >&2
			cat "$work/warn-$n" >&2
		fi
	fi
	echo "check-prefixes: patches 1..$n: ${#objs[@]} objects compiled with W=1$([ $nons = 0 ] && echo ', no new warning, every symbol resolves') ($(( $(date +%s) - t0 ))s)"
done
echo "check-prefixes: done in $(( $(date +%s) - start ))s, status $status"
exit $status
