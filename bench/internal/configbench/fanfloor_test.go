package configbench

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// TestFloorDelivers runs the fan-out floor's server in this process with a
// few of the fan-out's own watchers: every PUT's event must reach every
// watcher with the PUT's revision as its id, through the same client code
// the benchmark measures the replica with.
func TestFloorDelivers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	value := harness.JSONValue(64)
	go (&floorServer{value: value}).accept(ln)
	url := "http://" + ln.Addr().String()

	const n, puts = 5, 2
	log := slog.New(slog.DiscardHandler)
	wctx, stop := context.WithCancel(ctx)
	w := newWatchers(n, puts, "")
	if err := w.connect(wctx, log, func(int) string { return url + "/v1/watch?key=" + fanKey }); err != nil {
		t.Fatal(err)
	}
	h := harness.NewHTTPTarget(harness.HTTPClientSDK, []string{url}, 1)
	defer h.Close()
	got, err := deliver(ctx, log, "floor", w, func() (int64, error) { return putRevision(ctx, h, url, fanKey, value) })
	stop()
	w.wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != puts {
		t.Fatalf("%d PUTs delivered, want %d", len(got), puts)
	}
	for i, p := range got {
		if p.revision != int64(i+1) || p.received != n || p.wrongID != 0 {
			t.Errorf("PUT %d: revision %d, received by %d of %d watchers, %d with a wrong id; want revision %d, all, none",
				i+1, p.revision, p.received, n, p.wrongID, i+1)
		}
	}
}
