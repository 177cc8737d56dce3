# s3mount. `make demo` and `make test` set up everything they need (scripts/install-deps.sh).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
TOOLS_BIN = $(shell bash scripts/install-deps.sh --print)
export PATH := $(TOOLS_BIN):$(PATH)

PREFIX ?= /usr/local
.PHONY: all build deps test unit fuzz integration bench bench-smoke vet demo demo-stop clean install uninstall reliability-report deb dist

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/s3mount ./cmd/s3mount

deps:
	bash scripts/install-deps.sh

# The whole suite: static checks, unit tests with the race detector, then the integration tests
# (real mounts of the built binary against MinIO and the AWS emulator). Needs root and /dev/fuse.
test: deps vet unit fuzz integration bench-smoke

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	bash scripts/check-layers.sh

# -race: go-fuse serves requests in parallel; -count=1: never trust a cached pass of a mount test.
# A hung fs test is reported by its watchdog (fs/watchdog_test.go); the summary is repeated last.
HANG_REPORT = /tmp/s3mount-unit-hang.txt
unit:
	rm -f $(HANG_REPORT)
	S3MOUNT_REQUIRE_WORLD=1 S3MOUNT_HANG_REPORT=$(HANG_REPORT) $(GO) test -race -count=1 -timeout 10m ./... || \
		{ test ! -e $(HANG_REPORT) || tail -n 24 $(HANG_REPORT); exit 1; }

# Each fuzz target briefly (an iteration count, not a time: a time limit can end a run with
# "context deadline exceeded"); the corpora in testdata/fuzz keep what was found before.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzOptionList$$' -fuzztime 200000x ./cmd/s3mount/
	$(GO) test -run '^$$' -fuzz '^FuzzCommandLine$$' -fuzztime 200000x ./cmd/s3mount/
	$(GO) test -run '^$$' -fuzz '^FuzzKeyMapping$$' -fuzztime 200000x ./fs/

integration:
	$(GO) test -tags integration -count=1 -timeout 30m ./integration/...

# docs/RELIABILITY.md, generated from a run of the fault, bad-input and load tests.
reliability-report: deps
	rm -f /tmp/s3mount-reliability.jsonl
	S3MOUNT_RELIABILITY_LOG=/tmp/s3mount-reliability.jsonl $(GO) test -tags integration -count=1 -timeout 30m \
		-run 'Fault|TwoMounts|Load|BadInput|Restic|Borg|Git|Rsync|Tar|PartRename|OtherUser|SetuidBits|ReadlinkOfHuge|Net|Secrets|ConfigFileRefused|NotDumpable|Unconfirmed|NextMountSweeps|CompleteWhoseAnswer|FailedNewFile|FreshOpens|VisibilityBounds' ./integration/ || true
	$(GO) run ./integration/cmd/reliabilityreport -in /tmp/s3mount-reliability.jsonl -out docs/RELIABILITY.md

# Benchmarks: s3mount beside the SDK ceiling, s3fs and rclone, under the s3like and loopback network
# profiles (docs/PERFORMANCE.md); PROFILE=s3like (or loopback) measures under one.
bench:
	bash scripts/bench.sh $(if $(PROFILE),-profile $(PROFILE))

bench-smoke:
	bash scripts/bench.sh --smoke

demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh --stop

clean:
	rm -rf bin .demo build

# Installs the binary, the mount(8) helper for fstab lines of type fuse.s3mount, and the man page.
install: build
	install -D -m 0755 bin/s3mount $(DESTDIR)$(PREFIX)/bin/s3mount
	install -d $(DESTDIR)/sbin $(DESTDIR)$(PREFIX)/share/man/man8
	ln -sfn $(PREFIX)/bin/s3mount $(DESTDIR)/sbin/mount.fuse.s3mount
	bin/s3mount man > $(DESTDIR)$(PREFIX)/share/man/man8/s3mount.8

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/s3mount $(DESTDIR)/sbin/mount.fuse.s3mount $(DESTDIR)$(PREFIX)/share/man/man8/s3mount.8

# Releases: a static binary (no cgo), versioned from git as a Debian version (scripts/deb-version.sh).
DEB_VERSION = $(shell bash scripts/deb-version.sh)
ARCH = $(shell $(GO) env GOARCH)
STATIC_BUILD = CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(DEB_VERSION)"

# build/s3mount_VERSION-1_ARCH.deb: the binary, the mount.fuse.s3mount helper, the man page, the
# s3mount@.service template unit, /etc/s3mount/example.conf (0600) and bash completion. nFPM is
# pinned in tools/go.mod, apart from s3mount's own dependencies.
deb:
	rm -rf build/deb && mkdir -p build/deb
	$(STATIC_BUILD) -o build/deb/s3mount ./cmd/s3mount
	build/deb/s3mount man | gzip -9n > build/deb/s3mount.8.gz
	build/deb/s3mount completion bash > build/deb/s3mount.bash
	rm -f build/s3mount_*.deb
	S3MOUNT_DEB_VERSION=$(DEB_VERSION) S3MOUNT_DEB_ARCH=$(ARCH) \
		$(GO) tool -modfile=tools/go.mod nfpm package --config packaging/nfpm.yaml --packager deb --target build/

# build/dist/s3mount-VERSION-linux-ARCH.tar.gz and its .sha256: the static binary with the man
# page, completion, unit and example config, for hosts without dpkg.
DIST = s3mount-$(DEB_VERSION)-linux-$(ARCH)
dist:
	rm -rf build/dist && mkdir -p build/dist/$(DIST)
	$(STATIC_BUILD) -o build/dist/$(DIST)/s3mount ./cmd/s3mount
	build/dist/$(DIST)/s3mount man > build/dist/$(DIST)/s3mount.8
	build/dist/$(DIST)/s3mount completion bash > build/dist/$(DIST)/s3mount.bash
	cp README.md docs/CREDENTIALS.md packaging/s3mount@.service packaging/example.conf build/dist/$(DIST)/
	tar -C build/dist --sort=name --owner=0 --group=0 --numeric-owner --mtime=@$$(git log -1 --format=%ct) \
		-czf build/dist/$(DIST).tar.gz $(DIST)
	cd build/dist && sha256sum $(DIST).tar.gz > $(DIST).tar.gz.sha256
