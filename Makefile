# vmflow — see README.md.
#
#   make run     build and start vmflow with configs/vmflow.yaml
#   make run-influx  the same plus a local InfluxDB (configs/vmflow-influx.yaml)
#   make demo    vmflow fed by a synthetic cloud over loopback (DEMOFLAGS=...)
#   make build   build bin/vmflow (version, commit and date stamped in)
#   make package build dist/vmflow_<version>_<arch>.deb and .rpm (nfpm)
#   make test    install what the tests need, then unit + integration tests
#   make bench   Go benchmarks (ns and allocs per op) and the end-to-end blast
#   make bench-scale  the 200,000-pair benchmarks as one table
#   make fuzz    every fuzz target for FUZZTIME (default 20s) each
#   make lint    go vet and a gofmt check

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# Go from /usr/local/go on a fresh machine, and Go-installed tools (influxd).
# ($(shell) does not see the exported PATH in make 4.3: give it explicitly.)
GOPATH_BIN := $(or $(shell PATH="/usr/local/go/bin:$$PATH" go env GOPATH 2>/dev/null),$(HOME)/go)/bin
# sbin: ip, ss, ethtool and the OVS daemons, also when the caller's PATH lacks it.
export PATH := $(GOPATH_BIN):/usr/local/go/bin:$(PATH):/usr/local/sbin:/usr/sbin:/sbin
export GOFLAGS ?= -mod=mod

BIN        := bin/vmflow
CONFIG     ?= configs/vmflow.yaml
TESTFLAGS  ?=
TIMEOUT    ?= 40m
FUZZTIME   ?= 20s
BENCHTIME  ?= 1s

.PHONY: all build run run-influx demo test unit deps bench bench-scale blast ipfix-compare fuzz lint clean package

all: build

# Build identity (internal/buildinfo; `vmflow --version`, /api/v1/health,
# vmflow_build_info). VERSION is also the package version.
VERSION    ?= $(shell bash scripts/version.sh)
COMMIT     ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/vmflow/vmflow/internal/buildinfo
LDFLAGS    := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(BUILD_DATE)

build:
	go build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vmflow

# .deb and .rpm with nfpm (packaging/nfpm.yaml): binary, /etc/vmflow,
# systemd units, /var/lib/vmflow, maintainer scripts creating the user.
NFPM    ?= go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DIST    ?= dist
package: build
	mkdir -p $(DIST)
	for p in deb rpm; do \
	  VMFLOW_VERSION='$(VERSION)' GOARCH=$$(go env GOARCH) $(NFPM) package --config packaging/nfpm.yaml --packager $$p --target $(DIST)/; \
	done

run: build
	./$(BIN) --config $(CONFIG)

# vmflow writing to a local InfluxDB 1.8 (started here unless one answers
# on 127.0.0.1:8086), after `vmflow influx setup`.
run-influx: build
	bash scripts/run-influx.sh

# A synthetic cloud (internal/synth) exporting real sFlow and IPFIX over
# loopback into vmflow, console on http://127.0.0.1:8080 (see README, Demo).
DEMOFLAGS ?=
demo: build
	./$(BIN) demo $(DEMOFLAGS)

deps:
	bash scripts/install-deps.sh

# Unit and integration tests. VMFLOW_INTEGRATION=1 makes a missing
# dependency (OVS, iperf3, influxd, libvirtd, chromium) a failure, not a skip.
test: deps
	VMFLOW_INTEGRATION=1 go test -count=1 -timeout $(TIMEOUT) $(TESTFLAGS) ./...

# Unit tests only (integration tests skip without VMFLOW_INTEGRATION).
unit:
	go test -count=1 $(TESTFLAGS) ./...

# Benchmarks of every package that has some, then the end-to-end blast.
bench: | bin
	@pkgs=$$(grep -rl --include='*_test.go' -E '^func Benchmark' . | xargs -r -n1 dirname | sort -u | sed 's|^\.|github.com/vmflow/vmflow|'); \
	rc=0; \
	if [ -n "$$pkgs" ]; then \
	  echo "== go benchmarks: $$pkgs"; \
	  go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $$pkgs || rc=$$?; \
	fi; \
	$(MAKE) --no-print-directory blast || rc=$$?; \
	exit $$rc

# End to end: replayed OVS datagrams blasted over loopback into a running
# pipeline; prints samples/s processed and loss.
blast: | bin
	@echo "== end-to-end blast: replayed OVS sFlow over loopback into the whole pipeline"
	@VMFLOW_BLAST=1 go test -count=1 -run '^TestBlast(IPFIX)?$$' -v ./test/integration/ > bin/blast.log 2>&1 || { cat bin/blast.log; exit 1; }
	@grep -E 'blast (max|paced|ipfix)' bin/blast.log | sed -E 's/^ *blast(_ipfix)?_test.go:[0-9]+: //' 

# IPFIX side by side: nfdump's nfcapd and vmflow (each its own process) on
# the same OVS IPFIX replay at 100k/200k/400k records/s; one table of
# records per CPU-second and loss. COMPARE_REPEAT runs it N times (median).
COMPARE_REPEAT ?= 1
ipfix-compare:
	@VMFLOW_IPFIX_COMPARE=1 VMFLOW_COMPARE_REPEAT=$(COMPARE_REPEAT) go test -count=1 -timeout 30m -run '^TestIPFIXCompare$$' -v ./test/integration/ > bin/ipfix-compare.log 2>&1 || { cat bin/ipfix-compare.log; exit 1; }
	@sed -n '/^IPFIX side by side/,/^--- /p' bin/ipfix-compare.log | grep -v '^--- ' 

# Each fuzz target for FUZZTIME (go test -fuzz takes one target per run).
# Minimising a new input is capped at 5 s (Go's default, 60 s, can eat a
# short run).
# Scale benchmarks (200,000 active pairs): memory store, window close,
# API queries; one table (see README "Scale").
bench-scale:
	scripts/bench-scale.sh

fuzz:
	@grep -rH --include='*_test.go' -oE '^func Fuzz[A-Za-z0-9_]+' . | sort -u | \
	while IFS=: read -r file fn; do \
	  pkg=./$$(dirname "$${file#./}"); f=$${fn#func }; \
	  echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	  go test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s $$pkg || exit 1; \
	done

lint:
	go vet ./...
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo "lint: ok"

bin:
	mkdir -p bin

clean:
	rm -rf bin dist
