package main

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTopologyIsLocal loads compose.yaml as the cluster does and checks
// that what it runs is all on 127.0.0.1: no environment value still
// names a compose service as a host, every listening port is distinct,
// and each role listens where the others are told to find it.
func TestTopologyIsLocal(t *testing.T) {
	members, err := loadTopology(context.Background(), filepath.Join("..", "compose", "compose.yaml"), newSecrets(true).dotEnv(), 30000)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	kinds := map[string]int{}
	for _, m := range members {
		names = append(names, regexp.QuoteMeta(m.name))
		kinds[m.kind]++
	}
	if kinds[kindNATS] != 3 || kinds[kindPostgres] != 1 {
		t.Errorf("kinds = %v, want 3 NATS servers and PostgreSQL", kinds)
	}
	// A service name as a host: after // or @, or before a port.
	host := regexp.MustCompile(`(//|@)(` + strings.Join(names, "|") + `)\b|\b(` + strings.Join(names, "|") + `):\d`)
	seen := map[int]string{}
	for _, m := range members {
		for in, local := range m.ports {
			if other, ok := seen[local]; ok {
				t.Errorf("%s:%d and %s both listen on %d", m.name, in, other, local)
			}
			seen[local] = m.name
		}
		for _, kv := range m.processEnv("postgres://127.0.0.1:5432/x") {
			if host.MatchString(kv) {
				t.Errorf("%s: %s still names a compose service as a host", m.name, kv)
			}
		}
	}
	reg := map[string]string{}
	for _, m := range members {
		if m.role() == "registry" {
			reg[m.name] = m.env["STEWARD_ADVERTISE_ADDR"]
		}
	}
	for _, m := range members {
		if m.role() != "registry" || m.oneShot {
			continue
		}
		env := strings.Join(m.processEnv(""), "\n")
		if want := "STEWARD_REGISTRY_ADDR=" + reg[m.name]; !strings.Contains(env, want) {
			t.Errorf("%s listens elsewhere than it advertises: want %s in\n%s", m.name, want, env)
		}
	}
}
