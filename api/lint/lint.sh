#!/usr/bin/env bash
# make api-lint: every OpenAPI document of Steward (the four services' and
# the gateway's merged one) through the tools clients use, each at a pinned
# version: Redocly CLI (recommended) and Spectral (spectral:oas) must report
# no error (redocly.yaml and .spectral.yaml say why each warning left is
# there); oapi-codegen with its default options generates types and a
# client for each that go build accepts; openapi-typescript's output for
# each type-checks with tsc beside requests.ts; the Go SDK's generated
# package (sdk/api) is what the generator makes of the gateway's document.
# Needs Go, node >= 20.19 and npm; installs nothing outside
# api/lint/node_modules and a temporary dir.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
docs=("$root"/services/{config,registry,election,scaler}/api/openapi.json "$root"/gateway/api/openapi.json)
log() { printf '[api-lint %s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# npm ci only when the lockfile changed since the last install.
if ! cmp -s package-lock.json node_modules/.package-lock.json.installed 2>/dev/null; then
	log "npm ci"
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json node_modules/.package-lock.json.installed
fi
bin=node_modules/.bin

log "redocly $("$bin"/redocly --version 2>/dev/null | tail -n 1) lint (recommended)"
"$bin"/redocly lint --config redocly.yaml --format=summary "${docs[@]}" 2>&1 | grep -v -e '^ *║' -e '^ *╔' -e '^ *╚' -e '^$' || { echo "redocly: errors (run it without --format=summary for where)"; exit 1; }

log "spectral $("$bin"/spectral --version) lint (spectral:oas)"
"$bin"/spectral lint --ruleset .spectral.yaml --fail-severity=error "${docs[@]}"

log "openapi-typescript $("$bin"/openapi-typescript --version | grep -o '[0-9][0-9.]*' | head -n 1), tsc $("$bin"/tsc --version | grep -o '[0-9][0-9.]*')"
rm -rf .gen && mkdir .gen
for doc in "${docs[@]}"; do
	name=$(basename "$(dirname "$(dirname "$doc")")")
	# It lints with redocly.yaml as it goes: those warnings were shown above.
	"$bin"/openapi-typescript "$doc" -o ".gen/$name.ts" >".gen/$name.log" 2>&1 || { cat ".gen/$name.log"; exit 1; }
done
"$bin"/tsc -p tsconfig.json

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp codegen/go.mod codegen/go.sum "$tmp"/
log "oapi-codegen $(cd "$tmp" && GOWORK=off go tool oapi-codegen -version | sed -n 2p) (types, client) and go build"
for doc in "${docs[@]}"; do
	name=$(basename "$(dirname "$(dirname "$doc")")")
	mkdir "$tmp/$name"
	(cd "$tmp" && GOWORK=off go tool oapi-codegen -generate types,client -package "$name" -o "$name/client.go" "$doc")
done
(cd "$tmp" && GOWORK=off GOFLAGS=-mod=mod go build ./...)

log "sdk/api/api.gen.go is what oapi-codegen makes of the gateway's document"
(cd "$tmp" && GOWORK=off go tool oapi-codegen -config "$root/sdk/api/oapi-codegen.yaml" -o sdk.gen.go "$root/gateway/api/openapi.json")
cmp -s "$tmp/sdk.gen.go" "$root/sdk/api/api.gen.go" || { echo "sdk/api/api.gen.go is out of date: run go generate ./sdk/api"; exit 1; }
log "ok: ${#docs[@]} documents"
