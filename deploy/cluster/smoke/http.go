package smoke

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// reply is an answer read whole.
type reply struct {
	method, path string
	status       int
	body         []byte
}

// String is how an answer shows in a failure: the request, the status
// and the start of the body.
func (r reply) String() string {
	b := strings.TrimSpace(string(r.body))
	if len(b) > 300 {
		b = b[:300] + "..."
	}
	return fmt.Sprintf("%s %s: %d %s", r.method, r.path, r.status, b)
}

func (r reply) decode(v any) error { return json.Unmarshal(r.body, v) }

// permanent is the error of a status that retrying cannot change: the
// request or the token is wrong. 401 is retried: a replica that has just
// started may not have applied the bootstrap token yet.
func (r reply) permanent() error {
	switch r.status {
	case http.StatusBadRequest, http.StatusForbidden, http.StatusMethodNotAllowed,
		http.StatusUnprocessableEntity, http.StatusPreconditionFailed:
		return fmt.Errorf("%s", r)
	}
	return nil
}

// do sends one request through the gateway with the token, bounded by
// requestTimeout.
func (r *run) do(ctx context.Context, method, path, body string) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	res, err := r.send(ctx, method, path, body)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return reply{method: method, path: path, status: res.StatusCode, body: b}, nil
}

func (r *run) send(ctx context.Context, method, path, body string) (*http.Response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(r.t.GatewayURL, "/")+path, rd)
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.t.Token)
	}
	return r.http.Do(req)
}

// watchOnce opens one watch stream, calls opened once it is open, and
// reads it until it shows a put of "two" on the key (found) or ends
// (what says how). An error from opened ends the step.
func (r *run) watchOnce(ctx context.Context, path string, opened func(context.Context) error) (found bool, what string, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res, err := r.send(wctx, http.MethodGet, path, "")
	if err != nil {
		return false, err.Error(), nil
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		rep := reply{method: http.MethodGet, path: path, status: res.StatusCode, body: b}
		return false, rep.String(), rep.permanent()
	}
	if err := opened(ctx); err != nil {
		return false, "", fmt.Errorf("the change to watch: %w", err)
	}
	events := 0
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var typ, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if typ != "" || data != "" {
				events++
				if typ == "put" && r.isTwo(data) {
					return true, "", nil
				}
			}
			typ, data = "", ""
		case strings.HasPrefix(line, "event:"):
			typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
	end := "closed"
	if err := sc.Err(); err != nil {
		end = err.Error()
	}
	return false, fmt.Sprintf("a stream that ended after %d events (%s)", events, end), nil
}

// isTwo reports whether a watch event's data is the put of "two".
func (r *run) isTwo(data string) bool {
	var ev struct {
		Entry struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		} `json:"entry"`
	}
	return json.Unmarshal([]byte(data), &ev) == nil && ev.Entry.Key == r.key && ev.Entry.Value == "two"
}

// upstream is the tiny HTTP service the route step reaches through the
// gateway: it answers every request with its name and the path it got.
type upstream struct {
	name string
	addr string // as registered
	srv  *http.Server
	done chan struct{}
}

func startUpstream(ln net.Listener, addr, name string, hits *atomic.Int64) (*upstream, error) {
	if ln == nil {
		listen := addr
		if listen == "" {
			listen = "127.0.0.1:0"
		}
		var err error
		if ln, err = net.Listen("tcp", listen); err != nil {
			return nil, err
		}
		addr = ""
	}
	if addr == "" {
		addr = ln.Addr().String()
	}
	u := &upstream{name: name, addr: addr, done: make(chan struct{})}
	u.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			hits.Add(1)
			_, _ = io.WriteString(w, u.answer(req.URL.Path))
		}),
	}
	go func() {
		defer close(u.done)
		_ = u.srv.Serve(ln)
	}()
	return u, nil
}

// answer is what the upstream says to a request for path.
func (u *upstream) answer(path string) string {
	return "steward smoke upstream " + u.name + ": " + path
}

func (u *upstream) close() {
	_ = u.srv.Close()
	<-u.done
}
