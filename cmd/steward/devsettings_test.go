package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestDevObeysGatewaySettings runs steward dev with
// STEWARD_GATEWAY_MAX_REQUESTS=1: while one request to a slow upstream is
// in flight through the gateway, a second is 503 at once. With the default
// (1024) the second reaches the upstream too, so the test tells the two
// apart.
func TestDevObeysGatewaySettings(t *testing.T) {
	for _, tc := range []struct {
		name       string
		env        []string
		wantSecond int
	}{
		{"max requests 1", []string{"STEWARD_GATEWAY_MAX_REQUESTS=1"}, http.StatusServiceUnavailable},
		{"default", nil, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			arrived := make(chan struct{}, 2)
			release := make(chan struct{})
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/slow" {
					arrived <- struct{}{}
					<-release
				}
				io.WriteString(w, "ok")
			}))
			defer upstream.Close()
			defer close(release)

			d := startDev(t, tc.env...)
			waitReady(t, d.registry+"/readyz", d.gateway+"/readyz")
			port := upstream.Listener.Addr().(*net.TCPAddr).Port
			req, _ := http.NewRequest(http.MethodPut, d.registry+"/v1/services/slow/instances/slow-1",
				strings.NewReader(fmt.Sprintf(`{"address":"127.0.0.1","port":%d}`, port)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("register slow-1 = %v, %v", resp, err)
			}
			resp.Body.Close()
			waitReady(t, d.gateway+"/s/slow/ready")

			// get sends a request to the slow upstream through the gateway
			// and answers its status (0: no answer).
			get := func() <-chan int {
				code := make(chan int, 1)
				go func() {
					resp, err := http.Get(d.gateway + "/s/slow/slow")
					if err != nil {
						code <- 0
						return
					}
					resp.Body.Close()
					code <- resp.StatusCode
				}()
				return code
			}
			get()
			select {
			case <-arrived:
			case <-time.After(10 * time.Second):
				t.Fatal("the first request did not reach the upstream in 10s")
			}
			second := get()
			select {
			case code := <-second:
				if code != tc.wantSecond {
					t.Fatalf("second request while one is in flight = %d, want %d", code, tc.wantSecond)
				}
			case <-arrived:
				if tc.wantSecond != http.StatusOK {
					t.Fatalf("second request reached the upstream, want %d from the gateway", tc.wantSecond)
				}
				release <- struct{}{}
				release <- struct{}{}
				if code := <-second; code != http.StatusOK {
					t.Fatalf("second request = %d, want 200", code)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("second request: no answer and no arrival in 10s")
			}
		})
	}
}
