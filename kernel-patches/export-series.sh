#!/bin/bash
# export-series.sh - regenerate kernel-patches/series from a kernel git repo.
#
# Usage: export-series.sh KERNEL-GIT-DIR
#   KERNEL-GIT-DIR is a git repository of the unpacked linux-source-6.12
#   whose first commit is the pristine source and whose later commits are
#   the series.  The cover letter's subject and text come from
#   kernel-patches/cover-letter.txt (first line: subject).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:?usage: export-series.sh KERNEL-GIT-DIR}
base=$(git -C "$src" rev-list --max-parents=0 HEAD)
rm -f "$here"/series/*.patch
git -C "$src" -c user.name="auditd-ns developers" -c user.email=auditd-ns@example.invalid format-patch -q --cover-letter --no-signature --zero-commit \
	--subject-prefix="PATCH auditd-ns v2" -o "$here/series" "$base..HEAD"
python3 - "$here/series/0000-cover-letter.patch" "$here/cover-letter.txt" <<'PY'
import sys
path, cover = sys.argv[1], sys.argv[2]
subject, _, blurb = open(cover).read().partition("\n")
s = open(path).read()
s = s.replace("*** SUBJECT HERE ***", subject.strip())
s = s.replace("*** BLURB HERE ***", blurb.strip("\n"))
open(path, "w").write(s)
PY
ls "$here/series"
