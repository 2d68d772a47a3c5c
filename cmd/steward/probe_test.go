package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/readyz":
			io.WriteString(w, "ok")
		case "/no-content":
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "not ready: no quorum", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // empty: success
	}{
		{"2xx", []string{srv.URL + "/readyz"}, ""},
		{"204", []string{srv.URL + "/no-content"}, ""},
		{"503 with the reason", []string{srv.URL + "/unready"}, "503 Service Unavailable: not ready: no quorum"},
		{"refused", []string{closed.URL + "/readyz"}, "connection refused"},
		{"no url", nil, "want one URL, got 0"},
		{"two urls", []string{srv.URL, srv.URL}, "want one URL, got 2"},
		{"bad url", []string{"::"}, "missing protocol scheme"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := runProbe(context.Background(), tc.args, &out, io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("probe %v = %v, want success", tc.args, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("probe %v = %v, want an error with %q", tc.args, err, tc.wantErr)
			}
		})
	}
}

// TestProbeCommand runs the binary as a health check does: the exit
// status is what counts, and arguments reach the command.
func TestProbeCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if out, err := exec.Command(binary, "probe", srv.URL+"/readyz").CombinedOutput(); err != nil {
		t.Fatalf("steward probe <ready> = %v, want exit 0:\n%s", err, out)
	}
	err := exec.Command(binary, "probe", srv.URL+"/other").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("steward probe <unready> = %v, want exit status 1", err)
	}
}
