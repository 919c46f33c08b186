# dmctl — build, test and demo targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(or $(shell git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null | sed 's/^v//'),0.0.0-dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X github.com/dmctl/dmctl/internal/cli.Version=$(VERSION) \
	-X github.com/dmctl/dmctl/internal/cli.Commit=$(COMMIT) -X github.com/dmctl/dmctl/internal/cli.Date=$(DATE)
BIN ?= bin
GOLANGCI_LINT_VERSION := v2.15.0
NPM_DIR := test/conformance
FUZZTIME ?= 5s

.PHONY: help build test unit e2e fuzz bench bench-fleet demo lint check conformance-deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## build bin/dmctl and bin/hubsim
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dmctl ./cmd/dmctl
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/hubsim ./cmd/hubsim

conformance-deps: ## install the Node SDKs the conformance suite runs (npm ci)
	@if [ -f $(NPM_DIR)/package-lock.json ]; then \
		if [ ! -d $(NPM_DIR)/node_modules ] || [ $(NPM_DIR)/package-lock.json -nt $(NPM_DIR)/node_modules ]; then \
			npm ci --prefix $(NPM_DIR) --no-audit --no-fund --loglevel=error && touch $(NPM_DIR)/node_modules; \
		fi; \
	fi

test: conformance-deps ## vet, unit tests (race), end-to-end and conformance tests, brief fuzzing
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) test -race -timeout 15m ./internal/... ./cmd/...
	$(GO) test -timeout 20m ./test/...
	$(MAKE) --no-print-directory fuzz

unit: ## unit tests only
	$(GO) test -race ./internal/... ./cmd/...

e2e: conformance-deps ## end-to-end and conformance suites only
	$(GO) test -timeout 20m ./test/...

fuzz: ## run every fuzz target briefly (FUZZTIME each)
	@for pkg in $$($(GO) list ./internal/...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/fuzz.$$$$.log 2>&1 || { cat /tmp/fuzz.$$$$.log; exit 1; }; \
		done; \
	done

bench: build ## print benchmark figures (side by side, one run)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./internal/... ./test/... | grep -Ev '^(ok|PASS|goos|goarch|cpu|pkg)'
	$(BIN)/hubsim bench --duration 5s
	$(MAKE) --no-print-directory bench-fleet

bench-fleet: build conformance-deps ## fleet figures (issue 5): dmctl vs hubsim bench and the Node SDK, S1 --rate auto, peak RSS
	$(GO) run ./test/bench/fleetbench -bin $(BIN)

demo: build ## start hubsim with a simulated fleet, reboot some devices with dmctl, stop hubsim
	BIN=$(BIN) ./examples/demo.sh

lint: ## golangci-lint (installed at a pinned version if missing)
	@command -v golangci-lint >/dev/null || $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	golangci-lint run ./...

check: ## fail when gofmt or go mod tidy would change anything
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean: ## remove build output
	rm -rf $(BIN) dist
