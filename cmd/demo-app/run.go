package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/stewardhq/steward/platform/advertise"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/sdk"
	"github.com/stewardhq/steward/sdk/api"
)

// run serves until ctx ends, then leaves the registry and only then
// drains: once deregistered, no one is sent new requests, so the drain
// waits on the requests already here and nothing else.
func run(ctx context.Context, s Settings, logger *slog.Logger) error {
	if err := s.validate(); err != nil {
		return err
	}
	id := s.instanceID()
	logger = logger.With("instance", id)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("", strconv.Itoa(s.Port)))
	if err != nil {
		return fmt.Errorf("listen on port %d: %w", s.Port, err)
	}
	var announce func(context.Context)
	if s.RegistryURL != "" {
		host, port, err := advertise.Advertised(s.AdvertiseAddr, ln.Addr())
		if err != nil {
			ln.Close()
			return err
		}
		c, err := sdk.New(s.RegistryURL, sdk.WithUserAgent("steward-demo-app"))
		if err != nil {
			ln.Close()
			return err
		}
		// The scaler needs metricsPath to know what to scrape.
		registration := api.Registration{Address: host, Port: port,
			Metadata: &map[string]string{"metricsPath": metricsPath}}
		if s.Version != "" {
			registration.Version = &s.Version
		}
		announce = func(ctx context.Context) {
			c.Services().Announce(ctx, s.Service, id, registration, sdk.AnnounceOptions{Logger: logger})
		}
	} else {
		logger.Info("STEWARD_REGISTRY_URL is empty: not registering")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	h := newServer(behaviour{id: id, service: s.Service, version: s.Version, work: s.Work, errorRate: s.ErrorRate}, reg, logger)

	// Serving outlives ctx, until the announcement has stopped.
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- web.Serve(serveCtx, ln, h, logger, s.ShutdownTimeout, web.Limits{}) }()
	logger.Info("demo app listening", "addr", ln.Addr().String(), "service", s.Service, "work", s.Work)

	announceCtx, stopAnnouncing := context.WithCancel(ctx)
	defer stopAnnouncing()
	announced := make(chan struct{})
	go func() {
		defer close(announced)
		if announce != nil {
			announce(announceCtx) // deregisters when announceCtx ends
		}
	}()

	select {
	case err := <-served: // the listener failed
		stopAnnouncing()
		<-announced
		return err
	case <-ctx.Done():
	}
	logger.Info("stopping: leaving the registry, then draining")
	stopAnnouncing()
	<-announced
	if announce != nil {
		// Announce has deregistered the instance if it was registered; if
		// the registry was unreachable, the TTL check will retire it.
		logger.Info("stopped announcing")
	}
	stopServing()
	return <-served
}
