// Package servicetest checks what every service built on platform/service
// must do, from the service's own tests.
package servicetest

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// Writes is how many writes Bounded sends.
const Writes = 6000

// Opener is a service's Open: config.Open, registry.Open, ...
type Opener[S any, R interface{ Close() error }] func(context.Context, S, *nats.Conn, *pgxpool.Pool, *slog.Logger) (R, error)

// Bounded checks that the stream of service name stays bounded as a
// process configured with STEWARD_SNAPSHOT_EVERY=1000 and
// STEWARD_RETAIN_ENTRIES=1000 runs. It loads the service's settings S
// from the environment, as `steward <name>` does, opens a replica with
// open on a fresh NATS server, waits for its /readyz, sends the Writes
// requests write(i) to handler(replica) one at a time (so each is an
// entry of its own, not batched with others), and fails unless every one
// succeeded, the stream's last sequence is at least Writes, and it holds
// fewer than 3,000 messages.
func Bounded[S any, R interface{ Close() error }](t *testing.T, name string, open Opener[S, R], handler func(R) http.Handler, write func(i int) *http.Request) {
	t.Setenv("STEWARD_SNAPSHOT_EVERY", "1000")
	t.Setenv("STEWARD_RETAIN_ENTRIES", "1000")
	var s S
	if err := envconf.Load(&s); err != nil {
		t.Fatal(err)
	}
	nc := qlogtest.StartServer(t).Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := open(ctx, s, nc, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rep.Close() })
	h := handler(rep)
	for serve(h, httptest.NewRequest("GET", "/readyz", nil)).Code != http.StatusOK {
		if ctx.Err() != nil {
			t.Fatalf("%s replica not ready in 30s", name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range Writes {
		if rec := serve(h, write(i)); rec.Code >= 300 {
			t.Fatalf("write %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	stream := "STEWARD_" + strings.ToUpper(name)
	// Trimming follows the snapshot, which a replica takes in the
	// background: give the last one a moment.
	var st jetstream.StreamState
	for deadline := time.Now().Add(30 * time.Second); ; {
		st = state(t, nc, stream)
		if st.Msgs < 3000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.LastSeq < Writes {
		t.Fatalf("%s: last sequence %d after %d writes: the writes were batched, so this test shows nothing", stream, st.LastSeq, Writes)
	}
	if st.Msgs >= 3000 {
		t.Fatalf("%s holds %d messages (sequences %d to %d) after %d writes with a snapshot every 1,000 entries and 1,000 retained; want fewer than 3,000",
			stream, st.Msgs, st.FirstSeq, st.LastSeq, Writes)
	}
	t.Logf("%s: %d messages (sequences %d to %d) after %d writes", stream, st.Msgs, st.FirstSeq, st.LastSeq, Writes)
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// state returns what the stream holds.
func state(t *testing.T, nc *nats.Conn, stream string) jetstream.StreamState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	return info.State
}
