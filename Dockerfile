# Steward's image: the one `steward` binary, static, on scratch, run as a
# non-root user; `docker run steward:dev <role>`. Orchestrators probe
# /readyz themselves (compose through `steward probe`, Kubernetes with
# httpGet), so the image has no HEALTHCHECK.
#
# Two ways to build it, both ending in the same layout:
#   docker build -t steward .                   from source (pulls golang)
#   make image                                  bin/steward built here, then
#   docker build --target prebuilt -t steward . (pulls nothing: scratch is no image)
# The prebuilt target comes before the golang stage: the classic builder
# (no BuildKit) runs every stage up to its target, and `--target prebuilt`
# must not need golang. BuildKit, Docker's default builder and compose's,
# runs only the stages a target needs, so `docker build .` from a fresh
# checkout needs no bin/steward.

ARG GO_VERSION=1.26

# base: what both ways share (/etc with the user, labels, entrypoint).
FROM scratch AS base
ARG VERSION=dev
ARG REVISION=unknown
COPY deploy/image/etc/ /etc/
ENV PATH=/usr/local/bin
USER 65532:65532
ENTRYPOINT ["steward"]
LABEL org.opencontainers.image.title="steward" \
      org.opencontainers.image.description="Steward: configuration, discovery, election, autoscaling and a gateway" \
      org.opencontainers.image.source="https://github.com/stewardhq/steward" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# prebuilt: bin/steward and bin/ca-certificates.crt from the build
# context (make image puts them there).
FROM base AS prebuilt
COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin/steward /usr/local/bin/steward

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# The modules steward is built from, each with replace lines to its
# siblings, so GOWORK=off needs no go.work listing every module. go.mod
# and go.sum first: the download layer is reused while they do not move.
COPY cmd/steward/go.mod cmd/steward/go.sum cmd/steward/
COPY gateway/go.mod gateway/go.sum gateway/
COPY migrations/go.mod migrations/go.sum* migrations/
COPY platform/go.mod platform/go.sum platform/
COPY services/config/go.mod services/config/go.sum services/config/
COPY services/registry/go.mod services/registry/go.sum services/registry/
COPY services/election/go.mod services/election/go.sum services/election/
COPY services/scaler/go.mod services/scaler/go.sum services/scaler/
COPY sdk/go.mod sdk/go.sum sdk/
ENV GOWORK=off CGO_ENABLED=0
RUN cd cmd/steward && go mod download
COPY cmd/steward/ cmd/steward/
COPY gateway/ gateway/
COPY migrations/ migrations/
COPY platform/ platform/
COPY services/ services/
COPY sdk/ sdk/
ARG VERSION=dev
ARG REVISION=unknown
RUN cd cmd/steward && go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/steward . && /out/steward version

FROM base
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/steward /usr/local/bin/steward
