# Shopkeeper: the operator (cmd/manager, api, controllers) and the shop's services (services/).
# `make help` lists the targets. Tools are built from the pinned modules under hack/tools into
# bin/, which git ignores; nothing is downloaded but Go modules and Debian packages.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

ROOT := $(abspath .)
# make splits paths on spaces: every target under bin/ would be two.
ifneq ($(words $(ROOT)),1)
$(error the checkout's path "$(ROOT)" holds a space, which make cannot handle: clone it to a path without one)
endif
LOCALBIN := $(ROOT)/bin
export PATH := $(LOCALBIN):$(PATH)
export GOTOOLCHAIN := local

# The tag `make images` writes on every image it builds but FerretDB's, the operator's image
# `make deploy` installs (IMG) and the e2e suite's Shop's spec.version. A Shop runs the services
# image its own spec.version names: the samples (config/samples) name v0.1.0.
VERSION ?= v0.1.0
IMG ?= ghcr.io/shopkeeper-dev/shopkeeper:$(VERSION)

CONTROLLER_GEN := $(LOCALBIN)/controller-gen
KUSTOMIZE := $(LOCALBIN)/kustomize
GOLANGCI_LINT := $(LOCALBIN)/golangci-lint
ACTIONLINT := $(LOCALBIN)/actionlint
FERRETDB := $(LOCALBIN)/ferretdb
KUBECTL = $(shell hack/kube-binaries.sh kubectl)/kubectl

GO_TEST_FLAGS ?= -count=1 -timeout 30m

# The Go files of the work tree: tracked ones that still exist (a file removed but not yet
# `git rm`ed would make gofmt fail) and new ones not yet added (git's ignores apply).
GO_FILES = $$(comm -23 <(git ls-files -co --exclude-standard -- '*.go' | LC_ALL=C sort) <(git ls-files -d | LC_ALL=C sort))

include hack/cluster.mk

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
		/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the API's DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRD and the RBAC role from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: verify-generated
verify-generated: ## Fail when generated code or manifests are older than their sources.
	hack/verify-generated.sh

.PHONY: fmt
fmt: ## Format the Go code (every module, as check-fmt checks it).
	gofmt -w $(GO_FILES)

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) $(ACTIONLINT) ## Run golangci-lint, and actionlint on the workflows.
	$(GOLANGCI_LINT) run ./...
	@if compgen -G '.github/workflows/*.y*ml' >/dev/null; then $(ACTIONLINT); fi

##@ Test

# The main module's tests run under the race detector. The tools' own tests (the last line)
# check thin wrappers, and the race detector would compile FerretDB's code for them: minutes for
# a test of seconds.
.PHONY: test
test: verify-generated check-fmt vet envtest-assets $(FERRETDB) $(HELM) rabbitmq-server race-toolchain ## Run every test, under the race detector: unit, envtest (real kube-apiserver + etcd), services (real FerretDB or MONGODB_URI, real RabbitMQ), the Helm chart.
	KUBEBUILDER_ASSETS="$$(hack/kube-binaries.sh)" FERRETDB_BIN="$(FERRETDB)" HELM="$(HELM)" \
		go test -race $(GO_TEST_FLAGS) ./...
	cd hack/tools && go test $(GO_TEST_FLAGS) ./mkimage/ ./ferretdb/

# The oldest Kubernetes the operator supports (README, "Install the operator") is pinned by
# hack/tools/kube-min; its kube-apiserver, with the etcd and kubectl of envtest-assets, runs the
# suites that start an API server (without the race detector: they test the API server's
# answers, and test already runs them under it).
.PHONY: test-kube-min
test-kube-min: envtest-assets $(HELM) ## Run the envtest suites (operator, manager, chart) against the oldest Kubernetes supported (hack/tools/kube-min).
	assets=$$(hack/kube-binaries.sh) && \
	min=$$(KUBE_TOOLS_MODULE="$(ROOT)/hack/tools/kube-min" hack/kube-binaries.sh kube-apiserver) && \
	ln -sf "$$assets/etcd" "$$assets/kubectl" "$$min/" && \
	"$$min/kube-apiserver" --version && \
	KUBEBUILDER_ASSETS="$$min" HELM="$(HELM)" go test $(GO_TEST_FLAGS) ./controllers/ ./cmd/manager/ ./charts/

.PHONY: race-toolchain
race-toolchain: ## Install the C toolchain the race detector needs (cgo), from Debian, when missing.
	hack/apt-install.sh gcc libc6-dev

.PHONY: check-fmt
check-fmt: ## Fail when a Go file is not gofmt-formatted.
	@files=$$(gofmt -l $(GO_FILES)); \
	if [ -n "$$files" ]; then echo "gofmt would change:"; echo "$$files"; exit 1; fi

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver, etcd and kubectl for envtest (cached under bin/k8s).
	hack/kube-binaries.sh

.PHONY: ferretdb
ferretdb: $(FERRETDB) ## Build FerretDB, the MongoDB-wire server the tests and `make run` use, into bin/.

.PHONY: rabbitmq-server
rabbitmq-server: ## Install RabbitMQ from Debian packages when missing (tests start private nodes).
	hack/install-rabbitmq.sh

##@ Benchmarks

.PHONY: bench-services
bench-services: $(FERRETDB) ## Benchmark user (GET /users/{id}) and product (POST /internal/reservations) on FerretDB, beside a reference.
	FERRETDB="$(FERRETDB)" hack/bench-services.sh

.PHONY: bench-gateway
bench-gateway: ## Benchmark the gateway: a fixed-response upstream direct, through the gateway and through references (bare fasthttp proxy, nginx, HAProxy), wrk 64 connections.
	hack/bench-gateway.sh

.PHONY: bench-orders
bench-orders: $(FERRETDB) rabbitmq-server ## Measure the order flow: orders/s and placed -> PAID p50/p99 (private RabbitMQ + FerretDB), beside a raw publish/consume reference (flags: BENCH_ORDERS_ARGS, e.g. '-rate 75').
	FERRETDB_BIN="$(FERRETDB)" hack/bench-orders.sh $(BENCH_ORDERS_ARGS)

.PHONY: bench
bench: bench-services bench-gateway bench-orders ## Run every benchmark.

##@ Build

.PHONY: build
build: ## Build the manager and the services' binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/ ./cmd/manager ./services/...

# The stores make run starts itself: none of the two the environment names (MONGODB_URI,
# RABBITMQ_URL), so that a given broker needs no RabbitMQ installed here.
RUN_STORES := $(if $(MONGODB_URI),,$(FERRETDB)) $(if $(RABBITMQ_URL),,rabbitmq-server)

.PHONY: run
run: build $(RUN_STORES) ## Run the whole suite as local processes (gateway on :8080, logs in .run/logs); Ctrl-C stops it.
	go build -o $(LOCALBIN)/runsuite ./services/internal/cmd/runsuite
	FERRETDB_BIN="$(FERRETDB)" $(LOCALBIN)/runsuite $(RUN_ARGS)

.PHONY: run-demo
run-demo: build $(RUN_STORES) ## Start the suite as local processes, run the demo story (hack/demo.sh) through the gateway, stop it (flags: RUN_ARGS, e.g. '-log-dir /tmp/demo' beside a make run).
	go build -o $(LOCALBIN)/runsuite ./services/internal/cmd/runsuite
	FERRETDB_BIN="$(FERRETDB)" $(LOCALBIN)/runsuite -port 0 -demo $(RUN_ARGS)

.PHONY: run-manager
run-manager: manifests generate ## Run the operator against the cluster of the current kubeconfig.
	go run ./cmd/manager

##@ Deployment

.PHONY: install
install: manifests $(KUSTOMIZE) ## Install the CRDs into the cluster of the current kubeconfig (taking them over from a Helm release that made them).
	$(KUSTOMIZE) build config/crd | $(KUBECTL) apply --server-side --force-conflicts -f -

.PHONY: uninstall
uninstall: manifests $(KUSTOMIZE) ## Remove the CRDs (and every Shop) from the cluster.
	$(KUSTOMIZE) build config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy the operator (config/default) with image IMG.
	@# The image is set in a copy of config/, so the tree stays as committed.
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r config "$$tmp/" && \
		(cd "$$tmp/config/manager" && $(KUSTOMIZE) edit set image controller=$(IMG)) && \
		$(KUSTOMIZE) build "$$tmp/config/default" | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove the operator and its CRD: every Shop in the cluster is deleted too, with its volumes (as uninstall).
	$(KUSTOMIZE) build config/default | $(KUBECTL) delete --ignore-not-found -f -

# Tools, built from the pinned modules under hack/tools.

$(CONTROLLER_GEN): hack/tools/go.mod
	cd hack/tools && go build -o $@ sigs.k8s.io/controller-tools/cmd/controller-gen

$(KUSTOMIZE): hack/tools/go.mod
	cd hack/tools && go build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(FERRETDB): hack/tools/go.mod $(wildcard hack/tools/ferretdb/*.go)
	cd hack/tools && go build -o $@ ./ferretdb

$(GOLANGCI_LINT): hack/tools/lint/go.mod
	cd hack/tools/lint && go build -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(ACTIONLINT): hack/tools/actionlint/go.mod
	cd hack/tools/actionlint && go build -o $@ github.com/rhysd/actionlint/cmd/actionlint
