package logging

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// BenchmarkRequestLine logs the line every HTTP request writes (the
// attributes of platform/web's request log) through a logger that carries
// the service's name, as web.Serve's does.
func BenchmarkRequestLine(b *testing.B) {
	for _, tc := range []struct {
		name string
		log  *slog.Logger
	}{
		{"slog JSON, no With", slog.New(slog.NewJSONHandler(io.Discard, nil))},
		{"slog JSON, With service", slog.New(slog.NewJSONHandler(io.Discard, nil)).With("service", "config")},
		{"New JSON, no With", New(io.Discard, JSON, slog.LevelInfo)},
		{"New JSON, With service", New(io.Discard, JSON, slog.LevelInfo).With("service", "config")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				tc.log.LogAttrs(ctx, slog.LevelInfo, "request",
					slog.String("method", "GET"),
					slog.String("path", "/v1/kv/bench/k17"),
					slog.String("route", "/v1/kv/*"),
					slog.Int("status", 200),
					slog.Int("bytes", 312),
					slog.Duration("duration", 1234567*time.Nanosecond),
					slog.String("remote", "127.0.0.1:53422"),
					slog.String("request_id", "r-abc-000123"),
					slog.String("trace_id", ""),
				)
			}
		})
	}
}
