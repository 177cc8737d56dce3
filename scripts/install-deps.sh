#!/usr/bin/env bash
# Installs everything the tests, the demo and the benchmarks need on a fresh Debian machine, and
# does nothing that is already done. Safe to run again and again.
#
#   scripts/install-deps.sh          Debian packages, MinIO, the EC2 metadata mock, Go modules
#   scripts/install-deps.sh --print  print the tool directory (for Makefiles and scripts)
#
# Tools built from source are pinned and kept per version under $S3MOUNT_TOOLS
# (default ~/.cache/s3mount/tools), so a second run, or another clone, reuses them.
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
EC2_METADATA_MOCK_VERSION=v1.13.0
TOOLS=${S3MOUNT_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/s3mount/tools}
BIN=$TOOLS/bin

if [[ ${1:-} == --print ]]; then
	echo "$BIN"
	exit 0
fi

log() { echo "install-deps: $*" >&2; }

# Debian packages: fuse3 for fusermount3 and the FUSE userspace; the rest are the real tools the
# integration tests and benchmarks run against the mount.
APT_PACKAGES=(fuse3 restic borgbackup git rsync fio s3fs rclone attr ca-certificates)
missing=()
for p in "${APT_PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	log "apt-get install ${missing[*]}"
	SUDO=""
	[[ $(id -u) == 0 ]] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# go install into a per-version directory, then link it into $BIN.
install_go_tool() { # name module version
	local name=$1 module=$2 version=$3
	local dir=$TOOLS/$name@$version
	if [[ ! -x $dir/$name ]]; then
		log "building $name $version from the Go module proxy (MinIO takes several minutes the first time)"
		mkdir -p "$dir.tmp"
		GOBIN=$dir.tmp GOFLAGS=-buildvcs=false go install "$module@$version"
		rm -rf "$dir" && mv "$dir.tmp" "$dir"
	fi
	mkdir -p "$BIN"
	ln -sfn "$dir/$name" "$BIN/$name"
}
install_go_tool minio github.com/minio/minio "$MINIO_VERSION"
install_go_tool ec2-metadata-mock github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock "$EC2_METADATA_MOCK_VERSION"

# The project's own Go modules.
cd "$(dirname "$0")/.."
go mod download
log "ready; tools in $BIN"
