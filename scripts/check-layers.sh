#!/usr/bin/env bash
# Guards the architecture: fs/ never imports the AWS SDK nor the Prometheus client (it records
# through fs/metrics; cmd/s3mount serves the metrics), s3backend/ and creds/ never import go-fuse,
# internal/safepath (a leaf used by fs/ and cmd/) imports none of the project's packages, and
# nothing outside fs/ passes wrapped errors to go-fuse's ToErrno.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
deps() { go list -deps "$@" 2>/dev/null; }
if deps ./fs/... | grep -q '^github.com/aws/'; then
	echo "check-layers: fs/ depends on the AWS SDK:"; deps ./fs/... | grep '^github.com/aws/' | head; fail=1
fi
if deps ./fs/... | grep -q '^github.com/prometheus/'; then
	echo "check-layers: fs/ depends on the Prometheus client:"; deps ./fs/... | grep '^github.com/prometheus/' | head; fail=1
fi
for pkg in ./s3backend/... ./creds/...; do
	if deps "$pkg" | grep -q '^github.com/hanwen/go-fuse'; then
		echo "check-layers: $pkg depends on go-fuse"; fail=1
	fi
done
if deps ./internal/safepath/ | grep -E '^github.com/(s3mount/s3mount/(fs|s3backend|creds|cmd)|hanwen/go-fuse|aws/)' | grep -q .; then
	echo "check-layers: internal/safepath must stay a leaf:"; deps ./internal/safepath/ | grep -E '^github.com/(s3mount|hanwen|aws)/'; fail=1
fi
if git grep -n 'ToErrno(' -- '*.go' | grep -v '^fs/errno.go' | grep -v '_test.go' | grep -q .; then
	echo "check-layers: use fs.toErrno, not go-fuse's ToErrno:"; git grep -n 'ToErrno(' -- '*.go'; fail=1
fi
exit $fail
