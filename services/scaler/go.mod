module github.com/stewardhq/steward/services/scaler

go 1.26.0

replace (
	github.com/stewardhq/steward/migrations => ../../migrations
	github.com/stewardhq/steward/platform => ../../platform
)

require (
	github.com/stewardhq/steward/platform v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)
