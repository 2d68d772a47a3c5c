// Package api is the gateway's OpenAPI document, the one for the whole
// API: the gateway's own part (gateway.json) and the four services'
// documents merged (package merge) into openapi.json, which the gateway
// serves at GET /openapi.json.
//
// The document is built at build time, by go generate, and committed:
// linters and client generators (make api-lint) read it as a file, a
// change to any service's document shows up in review as a change to it,
// and the gateway neither merges at start nor needs the services' modules.
// TestGenerated fails when openapi.json is not what go generate writes.
package api

import _ "embed"

//go:generate go run gen.go

// Document is the merged OpenAPI document, as served.
//
//go:embed openapi.json
var Document []byte
