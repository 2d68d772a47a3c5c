package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// The kinds of compose service the cluster knows how to run on this
// machine.
const (
	kindSteward  = "steward"  // `steward <command>`: a role, or a one-shot (restart: "no")
	kindNATS     = "nats"     // nats-server with a configuration written here
	kindPostgres = "postgres" // the machine's PostgreSQL, a fresh database
)

// rolePorts are the ports Steward's roles listen on inside a container
// (the plan's shared ports), and the variable that moves each here.
var rolePorts = map[string]struct {
	port int
	addr string
}{
	"gateway":  {8080, "STEWARD_GATEWAY_ADDR"},
	"config":   {8081, "STEWARD_CONFIG_ADDR"},
	"registry": {8082, "STEWARD_REGISTRY_ADDR"},
	"election": {8083, "STEWARD_ELECTION_ADDR"},
	"scaler":   {8084, "STEWARD_SCALER_ADDR"},
}

// NATS's ports inside its container: client, cluster routes, monitoring.
const (
	natsClientPort  = 4222
	natsClusterPort = 6222
	natsMonitorPort = 8222
)

// member is one compose service as a local process.
type member struct {
	name    string
	kind    string
	command []string          // a Steward service's command: its role, migrate, auth-init, ...
	env     map[string]string // compose's environment, host names rewritten
	oneShot bool              // runs to completion (restart: "no")
	// deps are the services it waits for, with compose's condition
	// (service_started, service_healthy, service_completed_successfully).
	deps map[string]string
	// ports maps each port it listens on in its container to the local
	// port it listens on here.
	ports map[int]int
}

// role is a Steward member's command (config, gateway, migrate, ...).
func (m *member) role() string {
	if len(m.command) == 0 {
		return ""
	}
	return m.command[0]
}

// readyURL is what says the member is healthy: a role's /readyz, a NATS
// server's /healthz (JetStream up and current); empty for a one-shot.
func (m *member) readyURL() string {
	switch {
	case m.kind == kindNATS:
		return fmt.Sprintf("http://127.0.0.1:%d/healthz", m.ports[natsMonitorPort])
	case m.kind == kindSteward && !m.oneShot:
		if rp, ok := rolePorts[m.role()]; ok {
			return fmt.Sprintf("http://127.0.0.1:%d/readyz", m.ports[rp.port])
		}
	}
	return ""
}

// secrets are the values compose.yaml takes from .env (steward gen-env):
// every secret is made up for the run.
type secrets struct {
	root         string
	natsPassword string
	// roleTokens are STEWARD_<ROLE>_TOKEN, the roles' own tokens. They
	// are the root secret when the steward binary has no auth-init to
	// make least-privilege tokens with.
	roleTokens map[string]string
}

func newSecrets(authInit bool) secrets {
	s := secrets{root: secret(), natsPassword: secret(), roleTokens: map[string]string{}}
	for _, r := range []string{"config", "registry", "election", "scaler", "gateway"} {
		s.roleTokens[r] = s.root
		if authInit {
			s.roleTokens[r] = secret()
		}
	}
	return s
}

// secret is a token secret as Steward makes them: stw_ and 256 random
// bits in base64url.
func secret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return "stw_" + base64.RawURLEncoding.EncodeToString(b[:])
}

// dotEnv is the .env compose.yaml is loaded with.
func (s secrets) dotEnv() []string {
	env := []string{
		"STEWARD_ROOT_TOKEN=" + s.root,
		"STEWARD_NATS_PASSWORD=" + s.natsPassword,
		// Unused: the database is the machine's (STEWARD_DATABASE_URL is
		// replaced), but compose.yaml requires it.
		"POSTGRES_PASSWORD=unused",
	}
	for _, r := range slices.Sorted(maps.Keys(s.roleTokens)) {
		env = append(env, "STEWARD_"+strings.ToUpper(r)+"_TOKEN="+s.roleTokens[r])
	}
	return env
}

// loadTopology reads compose.yaml as `docker compose` would with env as
// its .env, and turns every service into a member listening on
// 127.0.0.1, local ports taken in order from basePort: gateways first
// (gateway-1 at basePort), then every other service by name.
func loadTopology(ctx context.Context, composeFile string, env []string, basePort int) ([]*member, error) {
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs}, cli.WithWorkingDirectory(filepath.Dir(abs)), cli.WithEnv(env), cli.WithName("steward"))
	if err != nil {
		return nil, err
	}
	p, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", composeFile, err)
	}
	var members []*member
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		m := &member{name: name, command: s.Command, oneShot: s.Restart == types.RestartPolicyNo,
			deps: map[string]string{}, ports: map[int]int{}, env: map[string]string{}}
		switch image := s.Image; {
		case strings.HasPrefix(image, "steward"):
			m.kind = kindSteward
			if rp, ok := rolePorts[m.role()]; ok && !m.oneShot {
				m.ports[rp.port] = 0
			}
		case strings.HasPrefix(image, "nats"):
			m.kind = kindNATS
			m.ports[natsClientPort], m.ports[natsClusterPort], m.ports[natsMonitorPort] = 0, 0, 0
		case strings.HasPrefix(image, "postgres"):
			m.kind = kindPostgres
		default:
			return nil, fmt.Errorf("%s: service %s runs image %q, which the process cluster cannot run", composeFile, name, image)
		}
		for k, v := range s.Environment {
			if v != nil {
				m.env[k] = *v
			}
		}
		for dep, d := range s.DependsOn {
			m.deps[dep] = d.Condition
		}
		members = append(members, m)
	}
	if err := assignPorts(members, basePort); err != nil {
		return nil, err
	}
	rewriteHosts(members)
	return members, nil
}

// assignPorts gives every port a member listens on a local port.
func assignPorts(members []*member, basePort int) error {
	order := slices.Clone(members)
	slices.SortStableFunc(order, func(a, b *member) int {
		ag, bg := a.role() == "gateway", b.role() == "gateway"
		switch {
		case ag && !bg:
			return -1
		case bg && !ag:
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	next := basePort
	for _, m := range order {
		for _, p := range slices.Sorted(maps.Keys(m.ports)) {
			if next > 65535 {
				return fmt.Errorf("base port %d leaves too few ports for %d services", basePort, len(members))
			}
			m.ports[p] = next
			next++
		}
	}
	return nil
}

// rewriteHosts replaces every service:port in the members' environments
// (URLs, advertised addresses) with 127.0.0.1 and the service's local
// port.
func rewriteHosts(members []*member) {
	to := map[string]string{}
	var names []string
	for _, m := range members {
		for in, local := range m.ports {
			from := m.name + ":" + strconv.Itoa(in)
			to[from] = "127.0.0.1:" + strconv.Itoa(local)
			names = append(names, regexp.QuoteMeta(from))
		}
	}
	if len(names) == 0 {
		return
	}
	// Longest first, so that nats-1:4222 never matches inside
	// xnats-1:42220; the boundaries do the rest.
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	re := regexp.MustCompile(`\b(` + strings.Join(names, "|") + `)\b`)
	for _, m := range members {
		for k, v := range m.env {
			m.env[k] = re.ReplaceAllStringFunc(v, func(s string) string { return to[s] })
		}
	}
}

// processEnv is a Steward member's environment here: compose's, with the
// listen address on loopback, the run's database, loopback instances
// allowed (every replica registers itself at 127.0.0.1), and a short
// shutdown so that Ctrl-C is quick.
func (m *member) processEnv(databaseURL string) []string {
	env := maps.Clone(m.env)
	if rp, ok := rolePorts[m.role()]; ok && !m.oneShot {
		env[rp.addr] = fmt.Sprintf("127.0.0.1:%d", m.ports[rp.port])
	}
	if _, ok := env["STEWARD_DATABASE_URL"]; ok {
		env["STEWARD_DATABASE_URL"] = databaseURL
	}
	env["STEWARD_REGISTRY_ALLOW_LOCAL"] = "true"
	env["STEWARD_SHUTDOWN_TIMEOUT"] = "5s"
	env["PATH"] = os.Getenv("PATH")
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
