#!/usr/bin/env bash
# make bench / make bench-smoke: s3mount side by side with the direct-SDK ceiling, s3fs and rclone
# mount, on one local MinIO (integration/cmd/s3bench), under the loopback and s3like network
# profiles (integration/shaper). Results: results.md (every profile, s3like first), PROFILE/
# (results.md, results.json, throughput.png, latency.png) and the logs, under bench-results/
# (bench-results/smoke/ for --smoke).
#
#   scripts/bench.sh                 the full run (some 70 minutes on 2 cores; not part of CI)
#   scripts/bench.sh --smoke         tiny sizes, under 3 minutes (part of make test)
#   scripts/bench.sh [--smoke] ARGS  more s3bench flags, e.g. -only s3mount,s3fs -jobs seqread,ls
#                                    -profile s3like -scale 0.25
#
# Needs root (FUSE mounts, apt) and /dev/fuse. s3bench unmounts what it mounted and stops MinIO
# also when a job fails or it is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=()
out=bench-results
if [[ ${1:-} == --smoke ]]; then
	smoke=(-smoke)
	out=bench-results/smoke
	shift
fi

bash scripts/install-deps.sh
PATH=$(bash scripts/install-deps.sh --print):$PATH
export PATH

# Private binaries: someone may be using bin/s3mount (make demo) while this runs.
build=$(mktemp -d /tmp/s3bench-build.XXXXXX)
trap 'rm -rf "$build"' EXIT
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
go build -ldflags "-X main.version=$version" -o "$build/s3mount" ./cmd/s3mount
go build -o "$build/s3bench" ./integration/cmd/s3bench
go build -o "$build/nullfs" ./integration/cmd/nullfs

mkdir -p "$out"
"$build/s3bench" "${smoke[@]}" -s3mount "$build/s3mount" -nullfs "$build/nullfs" -out "$out" "$@"
