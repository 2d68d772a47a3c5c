module github.com/stewardhq/steward/chaos

go 1.26.0

replace (
	github.com/stewardhq/steward/migrations => ../migrations
	github.com/stewardhq/steward/platform => ../platform
	github.com/stewardhq/steward/services/config => ../services/config
	github.com/stewardhq/steward/services/election => ../services/election
	github.com/stewardhq/steward/services/registry => ../services/registry
	github.com/stewardhq/steward/services/scaler => ../services/scaler
)

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/jackc/pgx/v5 v5.12.0
	github.com/nats-io/nats.go v1.55.0
	github.com/stewardhq/steward/platform v0.0.0
	github.com/stewardhq/steward/services/scaler v0.0.0
)

require (
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20240606120523-5a60cdf6a761 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)

replace github.com/stewardhq/steward/sdk => ../sdk
