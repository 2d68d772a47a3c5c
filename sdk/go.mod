module github.com/stewardhq/steward/sdk

go 1.26.0

require (
	github.com/oapi-codegen/runtime v1.9.0
	go.uber.org/goleak v1.3.0
	golang.org/x/net v0.60.0
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)
