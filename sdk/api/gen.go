// Package api is the Steward HTTP API as oapi-codegen generates it from
// the gateway's OpenAPI document (gateway/api/openapi.json): a type for
// every schema, a function for every operation. Package sdk wraps it
// where Go idioms matter (watches, campaigns, retries, failover); its
// Client.API reaches every operation here.
//
// api.gen.go is generated; `go generate ./sdk/api` makes it again, and
// make api-lint fails when it differs from what the document gives.
package api

//go:generate sh -c "cd ../../api/lint/codegen && GOWORK=off go tool oapi-codegen -config ../../../sdk/api/oapi-codegen.yaml -o ../../../sdk/api/api.gen.go ../../../gateway/api/openapi.json"
