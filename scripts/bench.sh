#!/usr/bin/env bash
# make bench / make bench-smoke: s3mount side by side with the direct-SDK ceiling, s3fs and rclone
# on one local MinIO. Results (results.md, results.json, charts) go to bench-results/.
#   scripts/bench.sh           the full run (about 20 minutes here)
#   scripts/bench.sh --smoke   tiny sizes, under 2 minutes (part of make test)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export PATH=$(bash scripts/install-deps.sh --print):$PATH
mkdir -p bin
go build -o bin/s3mount ./cmd/s3mount
go build -o bin/s3bench ./integration/cmd/s3bench
out=bench-results
[[ ${1:-} == --smoke ]] && out=bench-results/smoke
exec bin/s3bench -s3mount bin/s3mount -out "$out" ${1:+-smoke}
