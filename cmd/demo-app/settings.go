package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/stewardhq/steward/platform/logging"
)

// Settings are the process's environment variables. PORT and
// STEWARD_INSTANCE_ID are what the scaler's process driver sets; envconfig
// reads an unprefixed PORT when STEWARD_PORT is unset.
type Settings struct {
	// Port is the port to listen on, on every interface; 0 picks a free one.
	Port       int    `envconfig:"PORT" default:"0"`
	InstanceID string `envconfig:"INSTANCE_ID"`
	// Version is registered as the instance's version: the scaler's
	// process driver sets STEWARD_VERSION to its template's, so the
	// gateway can split traffic by it and a rollout tell old from new.
	Version string `envconfig:"VERSION"`
	// RegistryURL is the registry (replicas, comma-separated) to announce
	// in; set empty, the app does not register.
	RegistryURL string `envconfig:"REGISTRY_URL" default:"http://127.0.0.1:8082"`
	Service     string `envconfig:"DEMO_SERVICE" default:"demo"`
	// Work is the CPU time one GET / burns (?work= overrides it, up to
	// maxWork).
	Work time.Duration `envconfig:"DEMO_WORK" default:"20ms"`
	// ErrorRate is the share of GET / answered 500, spread evenly (one
	// in twenty at 0.05): a bad release, for a canary to catch.
	ErrorRate float64 `envconfig:"DEMO_ERROR_RATE" default:"0"`
	// AdvertiseAddr is the host:port registered; empty derives it from the
	// listener (client.Advertised).
	AdvertiseAddr string `envconfig:"ADVERTISE_ADDR"`
	// ShutdownTimeout bounds the drain after leaving the registry: with the
	// deregistration's 2 s, it fits the process driver's 10 s grace.
	ShutdownTimeout time.Duration  `envconfig:"SHUTDOWN_TIMEOUT" default:"5s"`
	LogFormat       logging.Format `envconfig:"LOG_FORMAT" default:"auto"`
	LogLevel        slog.Level     `envconfig:"LOG_LEVEL" default:"info"`
}

// Logging says how the process logs (launch.Settings).
func (s Settings) Logging() (logging.Format, slog.Level) { return s.LogFormat, s.LogLevel }

// validate refuses values envconfig accepts but the app cannot use.
func (s Settings) validate() error {
	switch {
	case s.Port < 0 || s.Port > 65535:
		return fmt.Errorf("invalid PORT=%d: want 0 to 65535", s.Port)
	case s.Work < 0:
		return fmt.Errorf("invalid STEWARD_DEMO_WORK=%s: negative", s.Work)
	case !(s.ErrorRate >= 0 && s.ErrorRate <= 1):
		return fmt.Errorf("invalid STEWARD_DEMO_ERROR_RATE=%g: want 0 to 1", s.ErrorRate)
	case s.Service == "" && s.RegistryURL != "":
		return fmt.Errorf("STEWARD_DEMO_SERVICE is empty: the app needs a service to register under")
	}
	return nil
}

// instanceID is STEWARD_INSTANCE_ID, else demo-<hostname>-<pid>, which is
// unique among the processes of one host.
func (s Settings) instanceID() string {
	if s.InstanceID != "" {
		return s.InstanceID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	return fmt.Sprintf("demo-%s-%d", host, os.Getpid())
}
