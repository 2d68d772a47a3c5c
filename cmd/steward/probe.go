package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/web"
)

// probeTimeout bounds one probe; a health check that hangs is a failed one.
const probeTimeout = 5 * time.Second

// runProbe is `steward probe <url>`: one GET, success on a 2xx answer. It
// is the container health check of an image that has no shell or curl
// (the image is FROM scratch): `steward probe http://127.0.0.1:8081/readyz`.
func runProbe(ctx context.Context, args []string, stdout, _ io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("probe: want one URL, got %d arguments", len(args))
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, args[0], nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	// STEWARD_TLS_CA_FILE and a client certificate, as the process's
	// own calls: a listener serving HTTPS with a private CA is probed.
	var tls web.TLS
	if err := envconf.Load(&tls); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	client, err := tls.HTTPClient(probeTimeout, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s: %s", args[0], resp.Status, body)
	}
	_, err = fmt.Fprintln(stdout, resp.Status)
	return err
}
