# Images, the Helm chart, the local cluster, the end-to-end suite and the demo.
# Included by the Makefile, whose ROOT, LOCALBIN, VERSION, IMG and KUBECTL it uses.

IMAGES_DIR := $(LOCALBIN)/images
MKIMAGE := $(LOCALBIN)/mkimage
HELM := $(LOCALBIN)/helm
COREDNS := $(LOCALBIN)/coredns

# Where the images are tagged. The operator's default services image is
# ghcr.io/shopkeeper-dev/shopkeeper-services:<Shop spec.version>.
MANAGER_IMG ?= $(IMG)
SERVICES_IMG ?= ghcr.io/shopkeeper-dev/shopkeeper-services:$(VERSION)
# Images of the local cluster only: its sandbox (pause) image and a RabbitMQ made from
# Debian's package (no registry can be reached there).
PAUSE_IMG ?= localhost/shopkeeper/pause:$(VERSION)
RABBITMQ_IMG ?= localhost/shopkeeper/rabbitmq:$(VERSION)
# FerretDB as the official image runs it (its own flags and FERRETDB_* variables), built
# from the version hack/tools pins.
FERRETDB_VERSION := $(shell awk '$$1 == "github.com/FerretDB/FerretDB" {print $$2}' hack/tools/go.mod)
FERRETDB_IMG ?= localhost/shopkeeper/ferretdb:$(FERRETDB_VERSION)

# Image files are stamped with the last commit's time, so rebuilding the same commit gives
# the same image digests.
export SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)

GO_IMAGE_BUILD = CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w"
IMAGE_LABELS = -label org.opencontainers.image.source=https://github.com/shopkeeper-dev/shopkeeper \
	-label org.opencontainers.image.version=$(VERSION) -label org.opencontainers.image.licenses=Apache-2.0
SERVICES := gateway user product order payment

##@ Images and cluster

.PHONY: images
images: image-manager image-services image-ferretdb image-pause image-rabbitmq ## Build every image as a docker-archive under bin/images (no daemon needed) and print their compressed sizes (the RabbitMQ image needs root: debootstrap).
	@cd $(IMAGES_DIR) && for f in manager services ferretdb pause rabbitmq; do \
		printf '%-9s %10s  %s\n' $$f "$$(stat -c %s $$f.tar | awk '{printf "%.1f MiB", $$1 / 1048576}')" "$$(tar -xOf $$f.tar manifest.json | sed -E 's/.*"RepoTags":\["([^"]*)".*/\1/')"; \
	done

.PHONY: image-manager
image-manager: $(MKIMAGE) ## Build the operator's image (bin/images/manager.tar).
	@mkdir -p $(IMAGES_DIR)/manager
	$(GO_IMAGE_BUILD) -o $(IMAGES_DIR)/manager/manager ./cmd/manager
	$(MKIMAGE) -o $(IMAGES_DIR)/manager.tar -t $(MANAGER_IMG) $(IMAGE_LABELS) \
		-add $(IMAGES_DIR)/manager/manager:/manager -dir /tmp:0:0:1777 \
		-user 65532:65532 -entrypoint /manager

.PHONY: image-services
image-services: $(MKIMAGE) ## Build the services image: one multi-call binary, linked as /gateway /user /product /order /payment (bin/images/services.tar).
	@mkdir -p $(IMAGES_DIR)/services
	$(GO_IMAGE_BUILD) -o $(IMAGES_DIR)/services/shopkeeper-services ./services/cmd/shopkeeper-services
	$(MKIMAGE) -o $(IMAGES_DIR)/services.tar -t $(SERVICES_IMG) $(IMAGE_LABELS) \
		-add $(IMAGES_DIR)/services/shopkeeper-services:/shopkeeper-services \
		$(foreach b,$(SERVICES),-symlink /$(b):shopkeeper-services) -dir /tmp:0:0:1777 \
		-user 65532:65532 -port 8080/tcp

.PHONY: image-ferretdb
image-ferretdb: $(MKIMAGE) ## Build a FerretDB image for clusters that cannot pull the official one (bin/images/ferretdb.tar).
	@mkdir -p $(IMAGES_DIR)/ferretdb
	cd hack/tools && $(GO_IMAGE_BUILD) -o $(IMAGES_DIR)/ferretdb/ferretdb ./ferretdb
	$(MKIMAGE) -o $(IMAGES_DIR)/ferretdb.tar -t $(FERRETDB_IMG) \
		-label org.opencontainers.image.version=$(FERRETDB_VERSION) -label org.opencontainers.image.licenses=Apache-2.0 \
		-add $(IMAGES_DIR)/ferretdb/ferretdb:/ferretdb -dir /state:65532:65532:0750 -dir /tmp:0:0:1777 \
		-user 65532:65532 -entrypoint /ferretdb -port 27017/tcp -volume /state

.PHONY: image-pause
image-pause: $(MKIMAGE) ## Build the local cluster's sandbox image (bin/images/pause.tar).
	@mkdir -p $(IMAGES_DIR)/pause
	$(GO_IMAGE_BUILD) -o $(IMAGES_DIR)/pause/pause ./hack/local-cluster/pause
	$(MKIMAGE) -o $(IMAGES_DIR)/pause.tar -t $(PAUSE_IMG) $(IMAGE_LABELS) \
		-add $(IMAGES_DIR)/pause/pause:/pause -user 65535:65535 -entrypoint /pause

.PHONY: image-rabbitmq
image-rabbitmq: $(IMAGES_DIR)/rabbitmq.tar ## Build the local cluster's RabbitMQ image from Debian's package (bin/images/rabbitmq.tar; needs root: debootstrap).

# The root filesystem takes a couple of minutes of debootstrap: it is remade only when
# its script changes, and the image only when the root filesystem or its tag does.
$(IMAGES_DIR)/cache/rabbitmq-rootfs.tar: hack/images/rabbitmq-rootfs.sh
	@mkdir -p $(@D)
	rm -f $@
	hack/images/rabbitmq-rootfs.sh $@

# The tag and labels are in the image's file: a VERSION or RABBITMQ_IMG other than its last
# build's makes it again (from the root filesystem above, in seconds).
$(IMAGES_DIR)/cache/rabbitmq.tag: FORCE
	@mkdir -p $(@D)
	@echo '$(RABBITMQ_IMG) $(VERSION)' | cmp -s - $@ || echo '$(RABBITMQ_IMG) $(VERSION)' >$@

.PHONY: FORCE
FORCE:

$(IMAGES_DIR)/rabbitmq.tar: $(IMAGES_DIR)/cache/rabbitmq-rootfs.tar $(IMAGES_DIR)/cache/rabbitmq.tag $(MKIMAGE)
	$(MKIMAGE) -o $@ -t $(RABBITMQ_IMG) $(IMAGE_LABELS) -layer $< \
		-user 999:999 -entrypoint /usr/lib/rabbitmq/bin/rabbitmq-server \
		-env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		-env HOME=/var/lib/rabbitmq -env LANG=C.UTF-8 \
		-port 5672/tcp -port 15672/tcp -volume /var/lib/rabbitmq

$(MKIMAGE): hack/tools/go.mod $(wildcard hack/tools/mkimage/*.go)
	cd hack/tools && go build -o $@ ./mkimage

# Helm's release build stamps its version and the Kubernetes version it assumes when no
# cluster is asked (else v1.20, which the chart's kubeVersion refuses).
$(HELM): hack/tools/go.mod
	cd hack/tools && go build -ldflags "-X helm.sh/helm/v3/internal/version.version=v3.22.0 \
		-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37" \
		-o $@ helm.sh/helm/v3/cmd/helm

.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the Helm chart and test its render and its copies of config/ (charts/chart_test.go).
	$(HELM) lint --strict charts/shopkeeper
	HELM=$(HELM) go test $(GO_TEST_FLAGS) ./charts/...

.PHONY: sync-chart
sync-chart: ## Copy the CRDs and the manager's ClusterRole from config/ into the chart.
	hack/sync-chart.sh

# The local cluster: a real single node built here (hack/local-cluster.sh); needs root.
LOCAL_KUBECONFIG := $(LOCALBIN)/local-cluster/kubeconfig

.PHONY: cluster-up
cluster-up: image-pause ## Start the local single-node cluster (KUBECONFIG=bin/local-cluster/kubeconfig).
	VERSION=$(VERSION) PAUSE_IMG=$(PAUSE_IMG) hack/local-cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster; leaves no process, mount, bridge or iptables rule.
	hack/local-cluster.sh down

.PHONY: cluster-status
cluster-status: ## Say what of the local cluster runs.
	hack/local-cluster.sh status

.PHONY: cluster-images
cluster-images: images cluster-import ## Build the images and load them into the local cluster's node.

.PHONY: cluster-import
cluster-import: ## Load the images already under bin/images into the local cluster's node.
	hack/local-cluster.sh import $(addprefix $(IMAGES_DIR)/,manager.tar services.tar ferretdb.tar rabbitmq.tar)

##@ End to end

# The suite's knobs (test/e2e): the store engine and images of its Shop. Empty images are
# the operator's defaults (the official ones, which a cluster with a registry pulls).
E2E_MONGODB_ENGINE ?= FerretDB
E2E_MONGODB_IMAGE ?=
E2E_RABBITMQ_IMAGE ?=
E2E_MANAGER_IMAGE ?= $(MANAGER_IMG)
# The Shop's spec.version, the tag of the services image it runs: the one `make images`
# wrote (SERVICES_IMG), so that VERSION moves the operator's and the services' images alike.
E2E_SHOP_VERSION ?= $(VERSION)
# -v streams the suite's progress; ginkgo's own timeout, shorter than go test's, leaves
# time for its clean-up.
E2E_FLAGS ?= -v -count=1 -timeout 45m

.PHONY: e2e
e2e: ## Run the end-to-end suite (test/e2e) against the cluster of the current kubeconfig, which holds the images.
	E2E_MONGODB_ENGINE=$(E2E_MONGODB_ENGINE) E2E_MONGODB_IMAGE=$(E2E_MONGODB_IMAGE) E2E_RABBITMQ_IMAGE=$(E2E_RABBITMQ_IMAGE) \
		E2E_MANAGER_IMAGE=$(E2E_MANAGER_IMAGE) E2E_SHOP_VERSION=$(E2E_SHOP_VERSION) KUBECTL=$(KUBECTL) \
		go test -tags e2e $(E2E_FLAGS) ./test/e2e/ -ginkgo.v -ginkgo.timeout 40m

.PHONY: e2e-local
e2e-local: ## Local cluster up, images built and imported, the e2e suite, cluster down (needs root).
	hack/e2e-local.sh

##@ Demo

.PHONY: demo
demo: ## The shop on Kubernetes: a cluster (the current one, else the local one), the operator, the sample Shop until Ready, the demo story.
	VERSION=$(VERSION) RABBITMQ_IMG=$(RABBITMQ_IMG) hack/demo-cluster.sh up

.PHONY: demo-down
demo-down: ## Remove the demo's Shop and the operator, and stop the local cluster when it runs.
	hack/demo-cluster.sh down

# print-VAR prints a variable of the Makefile, for scripts that need the same value.
print-%:
	@echo '$($*)'
