package main

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"

	"github.com/stewardhq/steward/platform/auth"
)

// parseEnv reads a .env as docker compose does: KEY=VALUE lines, # comments.
func parseEnv(t *testing.T, s string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || v == "" {
			t.Fatalf("gen-env line %q is not KEY=VALUE", line)
		}
		if _, dup := env[k]; dup {
			t.Fatalf("gen-env sets %s twice", k)
		}
		env[k] = v
	}
	return env
}

func TestGenEnv(t *testing.T) {
	out, err := exec.Command(binary, "gen-env").Output()
	if err != nil {
		t.Fatalf("steward gen-env: %v", err)
	}
	env := parseEnv(t, string(out))
	tokens := []string{"STEWARD_ROOT_TOKEN", "STEWARD_CONFIG_TOKEN", "STEWARD_REGISTRY_TOKEN",
		"STEWARD_ELECTION_TOKEN", "STEWARD_SCALER_TOKEN", "STEWARD_GATEWAY_TOKEN"}
	passwords := []string{"STEWARD_NATS_PASSWORD", "POSTGRES_PASSWORD"}
	if len(env) != len(tokens)+len(passwords) {
		t.Errorf("gen-env sets %d variables, want %d:\n%s", len(env), len(tokens)+len(passwords), out)
	}
	seen := map[string]string{}
	for _, k := range append(tokens, passwords...) {
		v := env[k]
		if other, ok := seen[v]; ok {
			t.Errorf("%s = %s, the same as %s", k, v, other)
		}
		seen[v] = k
	}
	// Every token is a secret the bootstrap (and auth-init) accept.
	for _, k := range tokens {
		if err := auth.ValidateBootstrapSecret(env[k]); err != nil {
			t.Errorf("%s = %q: %v", k, env[k], err)
		}
	}
	// Passwords go into a database URL and a NATS configuration file
	// unquoted: letters and digits only, at least 128 bits of base32.
	for _, k := range passwords {
		if v := env[k]; len(v) < 26 || strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
			t.Errorf("%s = %q, want 26 or more base32 characters", k, v)
		}
	}
	// A second run makes new secrets.
	again := parseEnv(t, genEnv())
	for k, v := range env {
		if again[k] == v {
			t.Errorf("%s is the same in two runs: %s", k, v)
		}
	}
}
