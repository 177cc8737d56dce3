#!/usr/bin/env bash
# make demo: start a local S3 server (MinIO) and the emulated EC2 instance profile and STS, then
# mount s3://demo-bucket/team-a on ./mnt through the real credential chain:
#   IMDSv2 -> sts:AssumeRole of arn:aws:iam::222222222222:role/team-a-access with its External ID -> S3
# Ctrl-C (or `make demo-stop` from another terminal) unmounts and stops everything.
#
#   scripts/demo.sh          run until stopped
#   scripts/demo.sh --check  mount, show the tree, read a file, stop (used by the tests)
#   scripts/demo.sh --stop   stop a running demo
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STATE=$ROOT/.demo
MNT=$ROOT/mnt
mode=${1:-run}

if [[ $mode == --stop ]]; then
	if [[ -f $STATE/demo.pid ]] && kill -0 "$(cat "$STATE/demo.pid")" 2>/dev/null; then
		kill -TERM "$(cat "$STATE/demo.pid")"
		echo "demo: stopping"
	else
		echo "demo: not running"
	fi
	exit 0
fi

bash scripts/install-deps.sh
export PATH=$(bash scripts/install-deps.sh --print):$PATH
mkdir -p bin "$STATE" "$MNT"
go build -o bin/s3mount ./cmd/s3mount
go build -o bin/s3world ./integration/cmd/s3world

world_pid="" mount_pid=""
cleanup() {
	trap - EXIT INT TERM
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	fi
	[[ -n $mount_pid ]] && wait "$mount_pid" 2>/dev/null || true
	[[ -n $world_pid ]] && kill -TERM "$world_pid" 2>/dev/null && wait "$world_pid" 2>/dev/null || true
	rm -f "$STATE/demo.pid" "$STATE/env"
	echo "demo: unmounted $MNT and stopped the local S3 server and AWS emulator"
}
trap cleanup EXIT INT TERM
echo $$ >"$STATE/demo.pid"

if mountpoint -q "$MNT" || ! ls "$MNT" >/dev/null 2>&1; then
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
fi
rm -f "$STATE/env"
env -u AWS_CA_BUNDLE bin/s3world -dir "$STATE" -env "$STATE/env" &
world_pid=$!
for _ in $(seq 600); do
	[[ -f $STATE/env ]] && break
	kill -0 "$world_pid" 2>/dev/null || { echo "demo: the local AWS world failed to start; see $STATE/world.log" >&2; exit 1; }
	sleep 0.1
done
# shellcheck disable=SC1091
source "$STATE/env"

ROLE=arn:aws:iam::222222222222:role/team-a-access
echo "demo: MinIO (S3) at $S3_ENDPOINT; emulated IMDS at $IMDS_ENDPOINT and STS at $STS_ENDPOINT"
echo "demo: mounting s3://demo-bucket/team-a on ./mnt as the instance profile, then $ROLE"
env -u AWS_CA_BUNDLE bin/s3mount -f \
	--endpoint "$S3_ENDPOINT" --path-style --region us-east-1 \
	--imds-endpoint "$IMDS_ENDPOINT" --sts-endpoint "$STS_ENDPOINT" --iam-endpoint "$STS_ENDPOINT" \
	--role-arn "$ROLE" --external-id team-a-7f3c9e \
	s3://demo-bucket/team-a "$MNT" 2>"$STATE/s3mount.log" &
mount_pid=$!
for _ in $(seq 600); do
	mountpoint -q "$MNT" && break
	kill -0 "$mount_pid" 2>/dev/null || { cat "$STATE/s3mount.log" >&2; exit 1; }
	sleep 0.1
done

cat <<EOT

  s3://demo-bucket/team-a is mounted on ./mnt, with no access key anywhere:
  the emulated instance profile (IMDSv2) assumed $ROLE
  with its External ID, and MinIO enforces that role's policy.

  Try:
    ls -lR mnt
    cat mnt/README.txt
    cat mnt/reports/2026-q4.csv

  Stop: Ctrl-C here, or 'make demo-stop' in another terminal. Log: .demo/s3mount.log

EOT

if [[ $mode == --check ]]; then
	ls -lR "$MNT"
	cat "$MNT/README.txt"
	exit 0
fi
wait "$mount_pid"
