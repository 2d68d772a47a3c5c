package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stewardhq/steward/platform/pgstore/pgtest"
)

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	if err != nil {
		t.Fatalf("steward version: %v", err)
	}
	if !regexp.MustCompile(`^steward \S+ revision \S+`).Match(out) {
		t.Fatalf("steward version = %q, want steward <version> revision <revision>", out)
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"--help"}} {
		out, err := exec.Command(binary, args...).Output()
		if err != nil {
			t.Fatalf("steward %s: %v", args[0], err)
		}
		for _, c := range []string{"dev", "config", "registry", "election", "scaler", "gateway", "migrate", "log", "gen-env", "probe", "version"} {
			if !regexp.MustCompile(`(?m)^  ` + c + `\s`).Match(out) {
				t.Errorf("steward %s does not list %s:\n%s", args[0], c, out)
			}
		}
	}
}

// TestRoleHelpListsItsSettings checks that each command's --help (and
// `steward help <command>`) lists its STEWARD_* variables with their
// defaults and meanings.
func TestRoleHelpListsItsSettings(t *testing.T) {
	for role, want := range map[string][]string{
		"gateway":  {"STEWARD_GATEWAY_MAX_REQUESTS  *1024  *requests in flight", "STEWARD_GATEWAY_ZONE", "STEWARD_GATEWAY_SIGNALS_EVERY  *5s", "STEWARD_TRUSTED_PROXIES"},
		"config":   {"STEWARD_CONFIG_ADDR  *:8081", "STEWARD_CONFIG_RETAIN_REVISIONS  *10000", "STEWARD_NATS_URL", "STEWARD_SNAPSHOT_EVERY  *50000"},
		"registry": {"STEWARD_REGISTRY_ADDR  *:8082", "STEWARD_REGISTRY_ALLOW_LOCAL  *false", "STEWARD_REGISTRY_GUARD_SHARE  *0.5"},
		"election": {"STEWARD_ELECTION_ADDR  *:8083", "STEWARD_VOTERS", "STEWARD_REPLICA_ID .*empty: election-0"},
		"scaler":   {"STEWARD_SCALER_ADDR  *:8084", "STEWARD_ELECTION_URLS", "STEWARD_SCALER_LEASE_TTL  *10s"},
		"migrate":  {"STEWARD_DATABASE_URL"},
		"log":      {"STEWARD_NATS_URL  *nats://127.0.0.1:4222", "STEWARD_NATS_CREDS"},
		"dev":      {"STEWARD_DEV_NATS_ADDR  *127.0.0.1:4223", "STEWARD_DATA_DIR  *.steward", "STEWARD_SHUTDOWN_TIMEOUT  *4s", "STEWARD_GATEWAY_MAX_REQUESTS  *1024", "STEWARD_REGISTRY_GUARD_SHARE", "STEWARD_CONFIG_RETAIN_REVISIONS"},
	} {
		for _, args := range [][]string{{role, "--help"}, {role, "-h"}, {"help", role}} {
			out, err := exec.Command(binary, args...).Output()
			if err != nil {
				t.Fatalf("steward %s: %v", strings.Join(args, " "), err)
			}
			for _, w := range want {
				if !regexp.MustCompile(`(?m)^` + w).Match(out) {
					t.Errorf("steward %s lacks a line matching %q:\n%s", strings.Join(args, " "), w, out)
				}
			}
			// Every variable has a meaning.
			for _, line := range strings.Split(string(out), "\n") {
				if f := strings.Fields(line); len(f) == 2 && strings.HasPrefix(f[0], "STEWARD_") {
					t.Errorf("steward %s: %s has no meaning", strings.Join(args, " "), f[0])
				}
			}
		}
	}
}

// TestDevHelpOmitsWhatDevSets checks that steward dev --help does not
// offer the roles' variables dev overrides.
func TestDevHelpOmitsWhatDevSets(t *testing.T) {
	out, err := exec.Command(binary, "dev", "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"STEWARD_NATS_URL", "STEWARD_REPLICA_ID", "STEWARD_VOTERS", "STEWARD_REGISTRY_ALLOW_LOCAL"} {
		if regexp.MustCompile(`(?m)^` + v + `\s`).Match(out) {
			t.Errorf("steward dev --help lists %s, which dev sets itself:\n%s", v, out)
		}
	}
}

// TestMigrate runs steward migrate on an empty database twice: the first
// run creates the schema, the second finds nothing to do; both exit 0.
func TestMigrate(t *testing.T) {
	url := pgtest.NewDatabase(t)
	for range 2 {
		cmd := exec.Command(binary, "migrate")
		cmd.Env = append(os.Environ(), "STEWARD_DATABASE_URL="+url, "STEWARD_LOG_FORMAT=json")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("steward migrate: %v, stdout %q", err, out)
		}
		if !regexp.MustCompile(`^schema at version [1-9]\d*\n$`).Match(out) {
			t.Fatalf("steward migrate = %q, want the schema version", out)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var tables int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables == 0 {
		t.Fatal("steward migrate created no table")
	}
}

func TestMigrateWithoutDatabaseURL(t *testing.T) {
	cmd := exec.Command(binary, "migrate")
	cmd.Env = append(os.Environ(), "STEWARD_DATABASE_URL=")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "DATABASE_URL") {
		t.Fatalf("steward migrate without a database = %v, %q; want exit 1 naming STEWARD_DATABASE_URL", err, out)
	}
}
