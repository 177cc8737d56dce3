# s3mount. `make demo` and `make test` set up everything they need (scripts/install-deps.sh).
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
TOOLS_BIN = $(shell bash scripts/install-deps.sh --print)
export PATH := $(TOOLS_BIN):$(PATH)

PREFIX ?= /usr/local
.PHONY: all build deps test unit fuzz integration bench bench-smoke vet demo demo-stop clean install uninstall reliability-report

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
		-run 'Fault|TwoMounts|Load|BadInput|Restic|Borg|Git|Rsync|Tar|PartRename|OtherUser|SetuidBits|ReadlinkOfHuge' ./integration/ || true
	$(GO) run ./integration/cmd/reliabilityreport -in /tmp/s3mount-reliability.jsonl -out docs/RELIABILITY.md

# Benchmarks: s3mount beside the SDK ceiling, s3fs and rclone (docs/PERFORMANCE.md).
bench:
	bash scripts/bench.sh

bench-smoke:
	bash scripts/bench.sh --smoke

demo:
	bash scripts/demo.sh

demo-stop:
	bash scripts/demo.sh --stop

clean:
	rm -rf bin .demo

# Installs the binary, the mount(8) helper for fstab lines of type fuse.s3mount, and the man page.
install: build
	install -D -m 0755 bin/s3mount $(DESTDIR)$(PREFIX)/bin/s3mount
	install -d $(DESTDIR)/sbin $(DESTDIR)$(PREFIX)/share/man/man8
	ln -sfn $(PREFIX)/bin/s3mount $(DESTDIR)/sbin/mount.fuse.s3mount
	bin/s3mount man > $(DESTDIR)$(PREFIX)/share/man/man8/s3mount.8

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/s3mount $(DESTDIR)/sbin/mount.fuse.s3mount $(DESTDIR)$(PREFIX)/share/man/man8/s3mount.8
