#!/usr/bin/env bash
# Prints the package version from git, as a valid Debian version (it must start with a digit):
#   v1.2.0             -> 1.2.0
#   v1.2.0-3-gabc1234  -> 1.2.0+git3.abc1234   (3 commits after the tag)
#   no tag             -> 0.0~git20261207.abc1234 (the commit's date; sorts below any release)
# with "+dirty" appended for a tree with uncommitted changes.
set -euo pipefail
cd "$(dirname "$0")/.."
d=$(git describe --tags --always --dirty 2>/dev/null || echo unknown)
dirty=""
if [[ $d == *-dirty ]]; then
	d=${d%-dirty}
	dirty="+dirty"
fi
if [[ $d =~ ^v?([0-9][0-9A-Za-z.]*)(-([0-9]+)-g([0-9a-f]+))?$ ]]; then
	v=${BASH_REMATCH[1]}
	if [[ -n ${BASH_REMATCH[2]} ]]; then
		v+="+git${BASH_REMATCH[3]}.${BASH_REMATCH[4]}"
	fi
else
	date=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0)
	hash=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	v="0.0~git${date}.${hash}"
fi
echo "${v}${dirty}"
