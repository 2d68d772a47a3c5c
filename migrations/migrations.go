// Package migrations holds Steward's PostgreSQL schema as numbered
// golang-migrate files (NNNN_name.up.sql / .down.sql), embedded so that
// every binary carries the schema it was built against.
package migrations

import "embed"

// FS holds the migration files at its root.
//
//go:embed *.sql
var FS embed.FS
