module github.com/stewardhq/steward/migrations

go 1.26
