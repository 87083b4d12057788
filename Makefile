# auditd-ns. `make run` runs the daemon on this machine (as root) with the
# example config; `make test` installs what the tests need and runs every
# test, the kernel patches' VM tests included. See README.md.

GO        ?= go
BIN       := bin/auditd-ns
CONFIG    ?= configs/auditd-ns.yaml
FUZZTIME  ?= 10s
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo devel)

.PHONY: all build man completion run check test gotest deps unit bench fuzz vet clean

# Debian packages the tests use: the real auditd, ausearch, aureport,
# audisp-remote and audisp-syslog; LAUREL (JSON through a plugin; its
# package turns its plugin on, deps turns it off); ip netns; runc and a
# static busybox for the OCI hook test; and, for the kernel patches, the kernel source, its build tools and qemu.
DEBS := auditd audispd-plugins laurel iproute2 runc busybox-static \
	linux-source-6.12 qemu-system-x86 bc flex bison libelf-dev libssl-dev \
	ccache cpio build-essential iptables systemd podman crun

include kernel-patches/kernel.mk

all: build

build:
	$(GO) build -ldflags "-X github.com/auditd-ns/auditd-ns/internal/buildinfo.version=$(VERSION)" -o $(BIN) ./cmd/auditd-ns

# Man pages (section 8, one per command) and shell completions, made from
# the same command definitions as --help: install bin/man/*.8 in
# /usr/local/share/man/man8, and bin/completion/auditd-ns.bash in
# /etc/bash_completion.d (or the zsh/fish one where your shell reads it).
man: build
	rm -rf bin/man && ./$(BIN) gen-man bin/man

completion: build
	mkdir -p bin/completion
	for sh in bash zsh fish; do ./$(BIN) completion $$sh > bin/completion/auditd-ns.$$sh; done

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
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBS) >/dev/null && \
	  sed -i 's/^active = yes/active = no/' /etc/audit/plugins.d/laurel.conf; \
	else echo "deps: not root or no apt-get; install $(DEBS) yourself"; fi

unit:
	$(GO) test -count=1 -short ./...

# Static checks beyond go vet, pinned so that every machine runs the same
# ones: staticcheck (bugs, unused code and fields), and deadcode -test (a
# function that nothing, not even a test, reaches). go run fetches them
# through the module proxy on first use.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := golang.org/x/tools/cmd/deadcode@v0.52.0

vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@out="$$($(GO) run $(DEADCODE) -test ./...)" || exit 1; \
	  test -z "$$out" || { echo "$$out"; echo "dead code: remove it"; exit 1; }
	@test -z "$$(gofmt -l cmd internal pkg test bench)" || { gofmt -l cmd internal pkg test bench; echo "gofmt needed"; exit 1; }

# Runs every Fuzz function for FUZZTIME each.
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchmem ./pkg/...
	AUDITD_NS_BENCH=1 $(GO) test -count=1 -timeout 30m -run '^TestIntegrationSideBySide$$' -v ./bench -args $(BENCHARGS)

clean:
	rm -rf bin
