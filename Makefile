# helm-csghub. `make demo` and `make test` are the two commands a newcomer needs;
# the rest are their parts.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
export PATH := $(dir $(GO)):$(PATH)
# One set of build flags for every go command here (vet, unit and e2e test binaries, go run, and
# the install hook's build, which uses the same): a cold machine then compiles Helm, client-go and
# pgx once rather than once per flag set (~7 min on 2 cores). -ldflags=-w drops DWARF from test
# binaries (~2 s of link each, ~40 binaries); the release and hook builds pass their own -ldflags.
export CGO_ENABLED := 0
export GOFLAGS := -trimpath -ldflags=-w $(GOFLAGS)
VERSION := $(shell sed -n 's/^version:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$$/\1/p' plugin.yaml)
COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/opencsgs/helm-csghub/internal/buildinfo.Version=$(VERSION) \
	-X github.com/opencsgs/helm-csghub/internal/buildinfo.Commit=$(COMMIT)
# released platforms: make dist builds an archive for each, make cross compiles each
PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
# e2e runs one package on a pool of clusters (CSGHUB_TEST_CLUSTERS, see internal/testenv);
# the budget covers a cold CI machine.
TEST_TIMEOUT ?= 75m

.PHONY: all build cross crosscheck dist deps stack unit e2e test demo demo-down bench bench-logs lint clean

all: build

## build: the plugin binary into bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/helm-csghub .

## cross: compile the plugin for every platform in PLATFORMS (no output kept)
cross:
	@for p in $(PLATFORMS); do \
		echo "go build $$p"; \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -trimpath -o /dev/null . || exit 1; \
	done

## crosscheck: type-check the plugin for every platform in PLATFORMS but this one (part of
## make test: a cold full compile costs ~13 CPU-minutes a platform, a type-check ~40 CPU-seconds)
crosscheck:
	$(GO) run ./scripts/crosscheck $(filter-out $(shell $(GO) env GOOS)/$(shell $(GO) env GOARCH),$(PLATFORMS))

## dist: release files into dist/: an archive per platform, checksums.txt and the Helm 4
## plugin package csghub-<version>.tgz (signed when DIST_KEY and DIST_KEYRING are set,
## DIST_PASSPHRASE_FILE for an encrypted key); same commit, same archive bytes
dist:
	rm -rf dist
	$(GO) run ./scripts/dist -out dist -platforms "$(PLATFORMS)" -helm "$$(scripts/tools.sh path helm4)" \
		$(if $(DIST_KEY),-key "$(DIST_KEY)" -keyring "$(DIST_KEYRING)") \
		$(if $(DIST_PASSPHRASE_FILE),-passphrase-file "$(DIST_PASSPHRASE_FILE)")

## deps: Debian packages the tests need (PostgreSQL 15, openssl, ...), when missing
deps:
	scripts/deps.sh

## stack: cluster binaries, helm v3/v4, kubectl, FerretDB and MinIO built from the Go module proxy (cached in .cache/)
## (each part's seconds printed, 0 when cached; a cold build's steps are logged by the scripts)
stack: deps
	@for c in "scripts/k8senv/build.sh" "scripts/tools.sh build" "scripts/ferretdb.sh build" "scripts/minio.sh build"; do \
		t0=$$(date +%s); $$c >/dev/null || exit 1; echo "stack: $$c: $$(( $$(date +%s) - t0 ))s"; \
	done

## lint: formatting and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

## unit: unit tests only (no cluster): every package but internal/e2e
unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /internal/e2e)

## e2e: end-to-end tests on the real local stack
e2e: stack
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -json ./internal/e2e/... 2>&1 | $(GO) run ./scripts/testsummary

## test: everything (lint, every platform type-checked, unit, e2e on the real local stack);
## scripts/testsummary streams the output and ends with the 15 slowest tests, each package's
## seconds and the pass/fail/skip count (and fails the pipe when anything failed)
## internal/e2e is named first: go test starts the packages' runs in the order given, so the
## long e2e run starts as soon as its binary links and the unit packages build and run beside it
## (./... would start it after the ten packages before it alphabetically)
test: stack lint crosscheck
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -json ./internal/e2e/... $$($(GO) list ./... | grep -v /internal/e2e) 2>&1 | \
		$(GO) run ./scripts/testsummary

## demo: local cluster + PostgreSQL + csghub 1.15.0 with sample data, then helm csghub status
demo: stack
	$(GO) run ./scripts/demo up

## demo-down: stop the demo's cluster and PostgreSQL
demo-down:
	$(GO) run ./scripts/demo down

## bench: performance figures (backup/restore throughput, memory; see scripts/bench)
bench: stack
	scripts/bench/run.sh

## bench-logs: Dataflow logs move (v2.0.0) figures: 1M lines exported and imported, rows/s
bench-logs: stack
	$(GO) run ./scripts/bench/dataflowlogs $(BENCH_LOGS_FLAGS)

clean:
	rm -rf bin dist .cache/run
