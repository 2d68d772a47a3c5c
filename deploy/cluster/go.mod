module github.com/stewardhq/steward/deploy/cluster

go 1.26.0
