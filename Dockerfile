# syntax=docker/dockerfile:1
# Images of Shopkeeper for hosts with Docker (`make images` builds the same images with no
# daemon). Two targets:
#   docker build --target manager  -t ghcr.io/shopkeeper-dev/shopkeeper:v0.1.0 .
#   docker build --target services -t ghcr.io/shopkeeper-dev/shopkeeper-services:v0.1.0 .
# The services image holds one multi-call binary, /shopkeeper-services, linked as /gateway
# /user /product /order /payment; it has no entrypoint, because each Deployment the
# operator makes runs its own link. FerretDB has an image of its own (the official one, or
# `make image-ferretdb`).

ARG GO_VERSION=1.26.8

# The builder runs on the build host and cross-compiles: static binaries need no
# emulation of the target platform.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
ARG TARGETOS TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

FROM build AS build-manager
COPY api/ api/
COPY controllers/ controllers/
COPY cmd/ cmd/
COPY internal/ internal/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/manager ./cmd/manager

FROM build AS build-services
COPY internal/ internal/
COPY services/ services/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags "-s -w" -o /out/shopkeeper-services \
	./services/cmd/shopkeeper-services && \
	for s in gateway user product order payment; do ln -s shopkeeper-services "/out/$s"; done

# distroless/static: CA certificates, tzdata, /tmp and the nonroot user (65532), no shell.
FROM gcr.io/distroless/static-debian12:nonroot AS manager
COPY --from=build-manager /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

FROM gcr.io/distroless/static-debian12:nonroot AS services
COPY --from=build-services /out/ /
USER 65532:65532
EXPOSE 8080
