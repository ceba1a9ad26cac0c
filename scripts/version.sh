#!/usr/bin/env bash
# Prints vmflow's version for the binary (-ldflags) and the packages, in a
# form Debian and RPM order correctly:
#   on a tag vX.Y.Z                 X.Y.Z
#   N commits after vX.Y.Z          X.Y.Z+git.N.gSHA
#   no tag                          0.0.0~gitYYYYMMDDHHMMSS.gSHA (commit time, UTC)
# with ".dirty" appended when the work tree has uncommitted changes.
# Outside a git checkout: 0.0.0~unknown.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "0.0.0~unknown"
	exit 0
fi
sha=$(git rev-parse --short=12 HEAD)
dirty=""
if ! git diff --quiet HEAD -- 2>/dev/null; then
	dirty=".dirty"
fi
if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
	# v1.2.3-4-gabcdef
	tag=${desc%-*-g*}
	rest=${desc#"$tag"-}
	n=${rest%%-*}
	v=${tag#v}
	if [ "$n" = "0" ]; then
		echo "${v}${dirty:++git${dirty}}"
	else
		echo "${v}+git.${n}.g${sha}${dirty}"
	fi
	exit 0
fi
when=$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)
echo "0.0.0~git${when}.g${sha}${dirty}"
