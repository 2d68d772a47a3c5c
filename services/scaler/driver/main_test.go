package driver_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the process the process driver runs: with
// DRIVER_TEST_HELPER set it is a tiny service instead.
func TestMain(m *testing.M) {
	if os.Getenv("DRIVER_TEST_HELPER") != "" {
		helper()
		return
	}
	goleak.VerifyTestMain(m)
}

// helper listens on $PORT and answers its STEWARD_INSTANCE_ID (/version:
// its STEWARD_VERSION); /crash
// exits with status 3. On SIGTERM it drains briefly and exits 0, unless
// HELPER_MODE=ignore-term.
func helper() {
	id, port := os.Getenv("STEWARD_INSTANCE_ID"), os.Getenv("PORT")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	fmt.Printf("%s listening on %s\n", id, port)
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/version" {
			fmt.Fprint(w, os.Getenv("STEWARD_VERSION"))
			return
		}
		if r.URL.Path == "/crash" {
			fmt.Fprintln(os.Stderr, "crashing")
			os.Exit(3)
		}
		fmt.Fprint(w, id)
	}))
	for range sig {
		if os.Getenv("HELPER_MODE") == "ignore-term" {
			fmt.Println("ignoring SIGTERM")
			continue
		}
		fmt.Println("draining")
		ln.Close()
		time.Sleep(50 * time.Millisecond)
		os.Exit(0)
	}
}

// logRecorder is a JSON slog handler's output, read back as records.
type logRecorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecorder) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *logRecorder) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records whose msg is msg (all if empty).
func (l *logRecorder) records(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(l.buf.Bytes(), []byte("\n")) {
		var r map[string]any
		if json.Unmarshal(line, &r) == nil && (msg == "" || r["msg"] == msg) {
			out = append(out, r)
		}
	}
	return out
}

// eventually polls cond until it holds or a few seconds pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
