package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"

	"github.com/stewardhq/steward/platform/auth"
)

// runGenEnv is `steward gen-env`: a .env for deploy/compose with fresh
// secrets, so that no deployment shares a default password:
//
//	steward gen-env > deploy/compose/.env
func runGenEnv(_ context.Context, stdout, _ io.Writer) error {
	_, err := io.WriteString(stdout, genEnv())
	return err
}

func genEnv() string {
	s := "# Secrets of a Steward deployment (deploy/compose), from `steward gen-env`.\n" +
		"# Keep this file private (chmod 600); it is read by docker compose.\n\n" +
		"# Root token: STEWARD_AUTH_BOOTSTRAP_TOKEN of every role, and the operator's.\n" +
		"STEWARD_ROOT_TOKEN=" + auth.NewSecret() + "\n\n" +
		"# Each role's own token (STEWARD_AUTH_TOKEN), made by `steward auth-init`.\n"
	// `steward auth-init` gives each the least access it needs.
	for _, r := range auth.ServiceRoleNames {
		s += fmt.Sprintf("STEWARD_%s_TOKEN=%s\n", strings.ToUpper(r), auth.NewSecret())
	}
	// rand.Text is 26 characters of base32 (128 bits): safe in a URL and
	// in a NATS configuration file without quoting.
	s += "\n# NATS user steward's password, and PostgreSQL user postgres's.\n" +
		"STEWARD_NATS_PASSWORD=" + rand.Text() + "\n" +
		"POSTGRES_PASSWORD=" + rand.Text() + "\n"
	return s
}
