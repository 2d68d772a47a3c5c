package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
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
	resp, err := http.DefaultClient.Do(req)
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
