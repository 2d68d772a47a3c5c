package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward/platform/auth"
	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/logging"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/sdk/replicas"
)

// authInitSettings are `steward auth-init`'s environment.
type authInitSettings struct {
	ConfigURL string `envconfig:"CONFIG_URL" desc:"config replicas or gateways, comma-separated, whose /v1/auth API makes the roles and tokens; a call one cannot answer goes to the next"`
	Token     string `envconfig:"AUTH_TOKEN" desc:"a token that may write auth (the root token)"`
	// ServiceTokens maps a role (config, registry, election, scaler,
	// gateway) to the secret its processes run with.
	ServiceTokens  roleSecrets    `envconfig:"AUTH_SERVICE_TOKENS" desc:"role=secret pairs, comma-separated: the secret each role's processes have as STEWARD_AUTH_TOKEN (steward gen-env makes them)"`
	ScalerElection string         `envconfig:"SCALER_ELECTION" default:"steward-scaler" desc:"election the scaler replicas campaign in (as the scaler's setting)"`
	Timeout        time.Duration  `envconfig:"AUTH_INIT_TIMEOUT" default:"2m" desc:"how long to wait for the auth API to answer"`
	LogFormat      logging.Format `envconfig:"LOG_FORMAT" default:"auto" desc:"log format: json, text or auto (text on a terminal)"`
	LogLevel       slog.Level     `envconfig:"LOG_LEVEL" default:"info" desc:"lowest level logged: debug, info, warn, error"`
	// web.TLS: what it trusts and presents, as every process's own calls.
	web.TLS
}

// runAuthInit is `steward auth-init`, the one-shot step of a deployment
// (compose's auth-init service, the Helm chart's post-install Job) that
// gives each of Steward's own roles a token with the least access it
// needs (auth.ServiceRole), under the secret the deployment gave that
// role. It may run any number of times: a role is put as it should be,
// and a token whose secret exists already is left as it is.
func runAuthInit(ctx context.Context, stdout, stderr io.Writer) error {
	var s authInitSettings
	if err := envconf.Load(&s); err != nil {
		return err
	}
	switch {
	case s.ConfigURL == "":
		return errors.New("STEWARD_CONFIG_URL is empty: set it to a config replica or a gateway")
	case s.Token == "":
		return errors.New("STEWARD_AUTH_TOKEN is empty: set it to the root token")
	case len(s.ServiceTokens) == 0:
		return errors.New("STEWARD_AUTH_SERVICE_TOKENS is empty: want role=secret pairs such as config=<secret>,gateway=<secret>")
	}
	for role := range s.ServiceTokens {
		if _, ok := auth.ServiceRole(role, s.ScalerElection); !ok {
			return fmt.Errorf("STEWARD_AUTH_SERVICE_TOKENS: unknown role %q: want some of %s", role, strings.Join(auth.ServiceRoleNames, ", "))
		}
	}
	logger := logging.New(stderr, s.LogFormat, s.LogLevel)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	client, err := s.TLS.HTTPClient(10*time.Second, logger)
	if err != nil {
		return err
	}
	a := &authAPI{replicas: replicas.Parse(s.ConfigURL), token: s.Token, http: client, logger: logger}
	for _, name := range auth.ServiceRoleNames {
		secret, ok := s.ServiceTokens[name]
		if !ok {
			continue
		}
		role, _ := auth.ServiceRole(name, s.ScalerElection)
		if err := a.do(ctx, http.MethodPut, "/v1/auth/roles/"+url.PathEscape(role.Name), role, http.StatusOK, http.StatusCreated); err != nil {
			return fmt.Errorf("role %s: %w", role.Name, err)
		}
		req := auth.TokenRequest{Description: role.Name, Roles: []string{role.Name}, Secret: secret}
		// 409: a token with this secret exists, made by an earlier run.
		if err := a.do(ctx, http.MethodPost, "/v1/auth/tokens", req, http.StatusCreated, http.StatusConflict); err != nil {
			return fmt.Errorf("token of %s: %w", role.Name, err)
		}
		logger.Info("service token ready", "role", role.Name)
	}
	_, err = fmt.Fprintf(stdout, "service tokens ready for %d roles\n", len(s.ServiceTokens))
	return err
}

// authAPI calls the /v1/auth API with the root token, waiting out a
// service that is not up or not ready yet, and a bootstrap token not yet
// replicated (401).
type authAPI struct {
	replicas *replicas.Set
	token    string
	http     *http.Client
	logger   *slog.Logger
}

// do sends body to path until it is answered one of want, or a 4xx other
// than 401, or ctx ends.
func (a *authAPI) do(ctx context.Context, method, path string, body any, want ...int) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	for wait := 250 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		code, answer, err := a.send(ctx, method, path, b)
		switch {
		case err == nil && slices.Contains(want, code):
			return nil
		case err == nil && code >= 400 && code < 500 && code != http.StatusUnauthorized:
			return fmt.Errorf("%s %s: %d %s", method, path, code, answer)
		}
		if err == nil {
			err = fmt.Errorf("%d %s", code, answer)
		}
		a.logger.Info("auth API not ready, retrying", "call", method+" "+path, "err", err, "wait", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: gave up: %w", method, path, err)
		case <-time.After(wait):
		}
	}
}

func (a *authAPI) send(ctx context.Context, method, path string, body []byte) (int, string, error) {
	res, err := a.replicas.Do(ctx, a.http, replicas.Limits{}, func(ctx context.Context, base string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Content-Type", "application/json")
		return req, nil
	})
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, strings.TrimSpace(string(answer)), nil
}

// roleSecrets is STEWARD_AUTH_SERVICE_TOKENS: role=secret pairs,
// comma-separated (secrets hold no comma or '=' but at their end).
type roleSecrets map[string]string

// Decode parses the variable (envconfig.Decoder).
func (rs *roleSecrets) Decode(v string) error {
	*rs = roleSecrets{}
	for pair := range strings.SplitSeq(v, ",") {
		role, secret, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || role == "" || secret == "" {
			return fmt.Errorf("%q: want role=secret", pair)
		}
		if _, dup := (*rs)[role]; dup {
			return fmt.Errorf("role %s twice", role)
		}
		(*rs)[role] = secret
	}
	return nil
}
