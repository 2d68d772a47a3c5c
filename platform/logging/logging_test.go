package logging

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stewardhq/steward/platform/logging/logtest"
)

func TestNoRepeatedKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any
	}{
		{"same key twice by With", func(l *slog.Logger) {
			l.With("service", "registry").With("service", "registry").Info("m")
		}, map[string]any{"service": "registry"}},
		{"With then record: the innermost wins", func(l *slog.Logger) {
			l.With("service", "registry", "replica", "r-0").Info("m", "service", "web", "n", 1)
		}, map[string]any{"service": "web", "replica": "r-0", "n": float64(1)}},
		{"twice in one record", func(l *slog.Logger) { l.Info("m", "a", 1, "a", 2) }, map[string]any{"a": float64(2)}},
		{"groups are their own scope", func(l *slog.Logger) {
			l.With("service", "a").WithGroup("g").With("service", "b").Info("m", "service", "c")
		}, map[string]any{"service": "a", "g": map[string]any{"service": "c"}}},
		{"nothing repeated", func(l *slog.Logger) { l.With("x", 1).Info("m", "y", 2) }, map[string]any{"x": float64(1), "y": float64(2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(New(&buf, JSON, slog.LevelDebug))
			recs, err := logtest.Lines(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 1 {
				t.Fatalf("%d lines, want 1: %s", len(recs), buf.Bytes())
			}
			for k, want := range tc.want {
				if got := recs[0][k]; !equal(got, want) {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

func equal(a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok || bok {
		if !aok || !bok || len(am) != len(bm) {
			return false
		}
		for k := range am {
			if !equal(am[k], bm[k]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func TestStrictRefusesRepeatedKeys(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, true},
		{`{"service":"registry","service":"registry"}`, false},
		{`{"a":{"b":1,"b":2}}`, false},
		{`{"a":[{"b":1,"b":2}]}`, false},
		{`[1]`, false},
		{`{"a":1}{"b":2}`, false},
	} {
		if err := logtest.Strict([]byte(tc.line)); (err == nil) != tc.ok {
			t.Errorf("Strict(%s) = %v, want ok %v", tc.line, err, tc.ok)
		}
	}
}
