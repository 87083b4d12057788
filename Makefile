# auditd-ns. `make run` runs the daemon on this machine (as root) with the
# example config; `make test` runs every test. See README.md.

GO        ?= go
BIN       := bin/auditd-ns
CONFIG    ?= configs/auditd-ns.yaml
FUZZTIME  ?= 10s

.PHONY: all build run check test unit bench fuzz vet clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/auditd-ns

run: build
	./$(BIN) run --config $(CONFIG)

check: build
	./$(BIN) check --config $(CONFIG)

# Every test: unit, integration on the real kernel (root), benchmarks once
# so that they keep compiling, and each fuzz target for a bounded time.
test: vet
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...
	$(MAKE) fuzz

unit:
	$(GO) test -count=1 -short ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l cmd internal pkg test)" || { gofmt -l cmd internal pkg test; echo "gofmt needed"; exit 1; }

# Runs every Fuzz function for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

bench:
	$(GO) test -count=1 -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
