module github.com/stewardhq/steward/services/election

go 1.26.0

replace (
	github.com/stewardhq/steward/migrations => ../../migrations
	github.com/stewardhq/steward/platform => ../../platform
	github.com/stewardhq/steward/services/config => ../config
)

require github.com/stewardhq/steward/platform v0.0.0-00010101000000-000000000000

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nats.go v1.55.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
