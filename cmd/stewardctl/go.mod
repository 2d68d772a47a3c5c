module github.com/stewardhq/steward/cmd/stewardctl

go 1.26.0

replace (
	github.com/stewardhq/steward/migrations => ../../migrations
	github.com/stewardhq/steward/platform => ../../platform
	github.com/stewardhq/steward/sdk => ../../sdk
)

require (
	github.com/spf13/cobra v1.10.2
	github.com/stewardhq/steward/platform v0.0.0
	github.com/stewardhq/steward/sdk v0.0.0-00010101000000-000000000000
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/apapsch/go-jsonmerge/v2 v2.0.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/oapi-codegen/runtime v1.9.0 // indirect
	github.com/spf13/pflag v1.0.9 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
