# auditd-ns. `make run` runs the daemon on this machine (as root) with the
# example config; `make test` installs what the tests need and runs every
# test, the kernel patches' VM tests included. See README.md.

GO        ?= go
BIN       := bin/auditd-ns
CONFIG    ?= configs/auditd-ns.yaml
FUZZTIME  ?= 10s

.PHONY: all build run check test gotest deps unit bench fuzz vet clean

# Debian packages the tests use: the real auditd, ausearch, aureport and
# audisp-remote; ip netns; runc and a static busybox for the OCI hook test;
# and, for the kernel patches, the kernel source, its build tools and qemu.
DEBS := auditd audispd-plugins iproute2 runc busybox-static \
	linux-source-6.12 qemu-system-x86 bc flex bison libelf-dev libssl-dev \
	ccache cpio build-essential iptables

include kernel-patches/kernel.mk

all: build

build:
	$(GO) build -o $(BIN) ./cmd/auditd-ns

run: build
	./$(BIN) run --config $(CONFIG)

check: build
	./$(BIN) check --config $(CONFIG)

# Every test: the Debian packages they need, unit and integration tests on
# the real kernel (root), benchmarks once so that they keep compiling, each
# fuzz target for a bounded time, and the kernel patches in a VM.
test: deps gotest vmtest

# AUDITD_NS_RACE=1: the end-to-end tests in test/ build the daemon with
# -race and fail on any race report in its stderr (only test/ reads it).
gotest: vet
	AUDITD_NS_RACE=1 $(GO) test -count=1 -timeout 30m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...
	$(MAKE) fuzz

deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null; \
	else echo "deps: not root or no apt-get; install $(DEBS) yourself"; fi

unit:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal pkg test bench)" || { gofmt -l cmd internal pkg test bench; echo "gofmt needed"; exit 1; }

# Runs every Fuzz function for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchmem ./...
	AUDITD_NS_BENCH=1 $(GO) test -count=1 -timeout 60m -run '^TestIntegrationSideBySide$$' -v ./bench -args $(BENCHARGS)

clean:
	rm -rf bin
