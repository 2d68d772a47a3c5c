package election_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
	"github.com/stewardhq/steward/platform/service"
	"github.com/stewardhq/steward/platform/web"
	"github.com/stewardhq/steward/platform/web/openapitest"
	"github.com/stewardhq/steward/services/election"
)

// contractDoc is api/openapi.json; every exchange of these tests is
// validated against it (openapi_test.go).
var contractDoc *openapitest.Contract

// apiClient validates every exchange and insists that a request the
// document calls invalid is refused; fuzzClient does not insist, since
// encoding/json accepts some bodies the document's schemas do not (field
// names in another case, for one).
var (
	baseTransport = &http.Transport{MaxIdleConnsPerHost: 64}
	apiClient     *http.Client
	fuzzClient    *http.Client
)

func TestMain(m *testing.M) {
	var err error
	if contractDoc, err = loadContract(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	apiClient = &http.Client{Transport: contractDoc.Transport(baseTransport, true)}
	fuzzClient = &http.Client{Transport: contractDoc.Transport(baseTransport, false), Timeout: time.Minute}
	code := m.Run()
	baseTransport.CloseIdleConnections()
	if n := contractDoc.Validated(); n > 0 {
		fmt.Fprintf(os.Stderr, "openapi: %d exchanges and %d watch events validated against api/openapi.json\n", n, contractDoc.Events())
		if testing.Verbose() {
			for _, s := range contractDoc.Unexercised() {
				fmt.Fprintln(os.Stderr, "openapi: documented but not exercised:", s)
			}
		}
	}
	if code == 0 {
		if err := goleak.Find(qlogtest.IgnoreNATSLeaks()); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var quiet = slog.New(slog.DiscardHandler)

// node is one election replica serving HTTP on a fixed loopback address,
// with its expiry proposer, as election.Serve runs it. It can be killed
// and started again on the same address, as a crashed and restarted
// process would be.
type node struct {
	t    testing.TB
	nc   *nats.Conn
	s    election.Settings
	addr string
	url  string
	rep  *election.Replica

	mu   sync.Mutex
	stop func()
}

func startNode(t testing.TB, nc *nats.Conn, id string, voters []string) *node {
	t.Helper()
	n := &node{t: t, nc: nc, s: election.Settings{Replicated: service.Replicated{ReplicaID: id, Voters: voters, StreamReplicas: 1, SnapshotEvery: 100_000}}, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(n.kill)
	if _, fuzzing := t.(*testing.F); !fuzzing { // a fuzz coordinator may run no input itself
		contractDoc.ExpectValidated(t, n.addr)
	}
	return n
}

func (n *node) start() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := election.Open(ctx, n.s, n.nc, nil, quiet)
	if err != nil {
		n.t.Fatalf("open %s: %v", n.s.ReplicaID, err)
	}
	if err := rep.Log.WaitReady(ctx); err != nil {
		n.t.Fatal(err)
	}
	var ln net.Listener
	for {
		if ln, err = net.Listen("tcp", n.addr); err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // the address of the killed incarnation may linger
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr, n.url, n.rep = ln.Addr().String(), "http://"+ln.Addr().String(), rep
	sctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); rep.RunExpiry(sctx) }()
	go func() {
		defer wg.Done()
		_ = web.Serve(sctx, ln, rep.Handler, quiet, 100*time.Millisecond, web.Limits{})
	}()
	n.mu.Lock()
	n.stop = func() { rep.Close(); stop(); wg.Wait() }
	n.mu.Unlock()
}

// kill stops the replica abruptly: its log first, so requests in flight
// fail, then its server.
func (n *node) kill() {
	n.mu.Lock()
	stop := n.stop
	n.stop = nil
	n.mu.Unlock()
	if stop != nil {
		stop()
	}
}

type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r resp) num(field string) int64 {
	f, _ := r.body[field].(float64)
	return int64(f)
}

func (r resp) str(field string) string {
	s, _ := r.body[field].(string)
	return s
}

// do sends one request through the validating client; hdr is name, value
// pairs.
func do(ctx context.Context, method, url, body string, hdr ...string) (resp, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return resp{}, err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := apiClient.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	r := resp{status: res.StatusCode, header: res.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r, nil
}

func call(t testing.TB, method, url, body string, hdr ...string) resp {
	t.Helper()
	r, err := do(context.Background(), method, url, body, hdr...)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

func expect(t testing.TB, r resp, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id, event, data string
}

// nextEvent reads a stream up to the end of its next event.
func nextEvent(body *bufio.Reader) (sseEvent, error) {
	var cur sseEvent
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return sseEvent{}, err
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "" && cur.event != "":
			return cur, nil
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
}

// readEvents reads n events from a stream.
func readEvents(t testing.TB, body *bufio.Reader, n int) []sseEvent {
	t.Helper()
	var out []sseEvent
	for len(out) < n {
		ev, err := nextEvent(body)
		if err != nil {
			t.Fatalf("reading events: %v (have %d of %d: %v)", err, len(out), n, out)
		}
		out = append(out, ev)
	}
	return out
}
