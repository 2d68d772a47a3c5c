# Steward's top-level tasks. Every module in go.work is tested; the list is
# read from go.work so a new service module is picked up without edits here.
MODULES  := $(shell go work edit -json | sed -n 's/.*"DiskPath": "\.\/\(.*\)".*/\1/p')
PKGS     := $(addsuffix /...,$(addprefix ./,$(MODULES)))
FUZZTIME ?= 10s
STATICCHECK_VERSION := v0.8.2

# The image's version and revision (OCI labels, steward version).
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.PHONY: run demo test fuzz bench lint api-lint build ui ui-check chaos cluster image compose-test helm-lint clean

## run: start every service in one process on an embedded NATS server
run:
	go run ./cmd/steward dev

## demo: steward dev, a scaler with the process driver on cmd/demo-app and a
## load ramp through the gateway, printing the replicas as they scale up and
## back down, then a rollout act: v1 → v2 rolling, then a bad v3 canary that
## rolls back by itself (about 4.5 minutes; DEMO_FLAGS=-quick for about 2)
demo: build
	go run ./cmd/demo-app/ramp -steward bin/steward -app bin/demo-app $(DEMO_FLAGS)

## test: vet, then every module's tests with the race detector
test:
	go vet $(PKGS)
	go test -race -count=1 -timeout 20m $(PKGS)
	$(MAKE) helm-lint

## fuzz: run each fuzz target for FUZZTIME. Go 1.26's fuzzing coordinator
## can fail a run with a bare "context deadline exceeded" at the end of
## -fuzztime when a busy worker answers late (go.dev/issue/75804, fixed in
## Go 1.27): such a run, which wrote no failing input, is run again, up
## to three attempts (a CI run on 2026-12-07 met it twice in a row on a
## target that was still finding new inputs). A failing input always fails.
fuzz:
	@set -e; for pkg in $$(go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' $(PKGS)); do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target ($(FUZZTIME))"; \
			for attempt in 1 2 3; do \
				if go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg > .fuzz.out 2>&1; then cat .fuzz.out; break; fi; \
				cat .fuzz.out; \
				if [ $$attempt != 3 ] && grep -q 'context deadline exceeded' .fuzz.out && ! grep -q 'Failing input written' .fuzz.out; then \
					echo "fuzz $$pkg $$target: the coordinator's deadline race (go.dev/issue/75804), no failing input; running it again"; \
				else rm -f .fuzz.out; exit 1; fi; \
			done; \
		done; \
	done; rm -f .fuzz.out

## bench: qlog beside raw JetStream and embedded etcd, fsync on and off, as
## tables (bench/); e.g. make bench BENCH_FLAGS='-duration=1s -runs=1'
bench:
	go run $(BENCH_GOFLAGS) ./bench $(BENCH_FLAGS)

## lint: go vet and staticcheck
lint:
	go vet $(PKGS)
	go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)
	cd deploy/helm && GOWORK=off go run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## api-lint: every OpenAPI document (the four services' and the gateway's
## merged one) through the tools clients use, at versions pinned in
## api/lint: Redocly (recommended) and Spectral (spectral:oas) with no
## error, oapi-codegen's client for each built with go build,
## openapi-typescript's types for each type-checked with tsc (api/lint/lint.sh;
## needs node >= 20.19 and npm, installs into api/lint/node_modules only)
api-lint:
	api/lint/lint.sh

## ui: the web console (ui/, TypeScript and Vite) built into
## gateway/console/dist, which the gateway embeds; dist is committed, so
## that go build and go test need no npm
ui:
	cd ui && npm ci --no-audit --no-fund && npm run build

## ui-check: rebuild the console from the lockfile and fail when the
## committed gateway/console/dist differs from what the sources build
ui-check: ui
	@test -z "$$(git status --porcelain gateway/console/dist)" || { git status --short gateway/console/dist; \
		echo "gateway/console/dist differs from what ui/ builds: run make ui and commit it"; exit 1; }

## build: static binaries into bin/ (the console is embedded as
## committed: make ui rebuilds it, which needs npm; build stays Go-only
## so that it runs where only Go is installed, and ui-check in CI keeps
## the committed build in step with ui/)
build:
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -buildvcs=true -o bin/steward ./cmd/steward
	CGO_ENABLED=0 go build -trimpath -o bin/steward-config ./services/config/cmd/steward-config
	CGO_ENABLED=0 go build -trimpath -o bin/steward-registry ./services/registry/cmd/steward-registry
	CGO_ENABLED=0 go build -trimpath -o bin/steward-election ./services/election/cmd/steward-election
	CGO_ENABLED=0 go build -trimpath -o bin/steward-gateway ./gateway/cmd/steward-gateway
	CGO_ENABLED=0 go build -trimpath -o bin/steward-scaler ./services/scaler/cmd/steward-scaler
	CGO_ENABLED=0 go build -trimpath -o bin/demo-app ./cmd/demo-app
	CGO_ENABLED=0 go build -trimpath -buildvcs=true -o bin/stewardctl ./cmd/stewardctl

## chaos: the fault suite (chaos/, needs root): 3 nodes in network namespaces,
## each with a NATS server and a replica of every service, 2 gateways, clients
## with checkers and a nemesis; a table of the run at the end, exit 1 on any
## violation or HTTP 500. CHAOS_DURATION (default 4m), CHAOS_SEED, CHAOS_FAULTS
chaos: build
	CGO_ENABLED=0 go build -trimpath -o bin/nats-server github.com/nats-io/nats-server/v2
	go run ./chaos

## cluster: deploy/compose/compose.yaml's topology as local processes on
## 127.0.0.1 (deploy/cluster): 3 NATS servers with JetStream, a fresh database
## on the machine's PostgreSQL, migrate, 3 replicas of each service, 2
## gateways, auth on; prints the gateway URLs and the root token, runs until
## Ctrl-C, logs in a run directory. CLUSTER_BASE_PORT (default 18080: gateway-1)
cluster:
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o bin/steward ./cmd/steward
	CGO_ENABLED=0 go build -trimpath -o bin/nats-server github.com/nats-io/nats-server/v2
	go run ./deploy/cluster -bin bin

## image: the steward image from a steward built here (the Dockerfile's
## prebuilt target, which pulls no base image), as steward:dev and
## steward:$(VERSION); `docker build .` builds it from source instead
image:
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)" -o bin/steward ./cmd/steward
	cp /etc/ssl/certs/ca-certificates.crt bin/ca-certificates.crt
	docker build -q --target prebuilt --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		-t steward:dev -t steward:$(VERSION) .

## compose-test: build the images deploy/compose names (no registry:
## deploy/compose/images/build.sh), then bring the stack up with docker
## compose, run the smoke test through its gateway, down and up again, and
## check that what was written is still there (needs dockerd, docker compose)
compose-test:
	deploy/compose/images/build.sh
	cd deploy/compose && STEWARD_TEST_DOCKER=1 go test -count=1 -timeout 30m -run TestDockerCompose -v .

## helm-lint: the Helm chart (deploy/helm/steward) linted and rendered with
## helm v4 as a library, default and HA values, every manifest decoded
## strictly into k8s.io/api types and checked; also part of make test. Its
## module stays out of go.work, so that helm's dependencies (k8s.io, ...)
## do not move the versions Steward's own modules build with; no -race:
## it renders templates, and the race build of helm costs minutes
helm-lint:
	cd deploy/helm && GOWORK=off go vet ./... && GOWORK=off go test -count=1 ./...

clean:
	rm -rf bin .steward
