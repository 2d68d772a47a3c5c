package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stewardhq/steward/platform/web/webtest"
	"github.com/stewardhq/steward/sdk/api"
)

func TestWebSocketPassThrough(t *testing.T) {
	p := startPlane(t)
	u := startUpstream(t, p, "chat", "c-1", api.Registration{})
	u.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	g := startGateway(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/s/chat/special/ws", nil)
	if err != nil {
		t.Fatalf("dial through the gateway: %v", err)
	}
	defer c.CloseNow()
	for _, msg := range []string{"hello", "again"} {
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil || string(got) != "echo: "+msg {
			t.Fatalf("read = %q, %v; want echo: %s", got, err, msg)
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// raw sends bytes to the gateway and returns the first response's status
// line.
func raw(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, req)
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestSmuggling: framing attacks are refused or neutralised; whatever the
// gateway accepts, it re-frames, so the upstream never sees a request the
// client hid in another's body.
func TestSmuggling(t *testing.T) {
	p := startPlane(t)
	u := startUpstream(t, p, "web", "w-1", api.Registration{})
	g := startGateway(t, p)
	webtest.WaitFor(t, 10*time.Second, "route", func() bool { c, _, _ := get(t, g.url+"/s/web/x"); return c == 200 })
	addr := strings.TrimPrefix(g.url, "http://")
	smuggled := "GET /s/web/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	tests := []struct {
		name, req string
		want      string // status line prefix
	}{
		{"two content lengths", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd", "HTTP/1.1 400"},
		{"unknown transfer coding", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"two transfer encodings", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"bad chunk size", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"chunk longer than its size", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"space before colon", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		// RFC 9112 §6.3: a request framed both ways is refused and its
		// connection closed, so what follows it is never read as the
		// client's next request, let alone sent upstream.
		{"content-length and chunked", "POST /s/web/a HTTP/1.1\r\nHost: x\r\nContent-Length: 60\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "HTTP/1.1 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := raw(t, addr, tt.req); !strings.HasPrefix(got, tt.want) {
				t.Fatalf("status = %q, want %s", got, tt.want)
			}
		})
	}
	webtest.AmbiguousFraming(t, addr, http.MethodPost, "/s/web/a")
	if code, body, _ := get(t, g.url+"/s/web/x"); code != 200 {
		t.Fatalf("after the refusals, GET /s/web/x = %d %s", code, body)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.posts) != 0 {
		t.Fatalf("the upstream received refused requests' bodies: %v", u.posts)
	}
}
