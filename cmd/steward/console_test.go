package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/stewardhq/steward/gateway/console"
)

// bearer adds a token to every request of a client.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// chromiumPath is Debian's chromium: the test skips without it, except
// in CI (CI=true), which installs it (.ci/run).
func chromiumPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium is not installed (.ci/run installs it): %v", err)
		}
		t.Skip("chromium is not installed (apt-get install chromium chromium-driver)")
	}
	return path
}

// TestConsole drives the web console (/ui/ on the gateway) in a real
// Chromium against a real `steward dev` with auth on: it logs in, creates
// a key and sees a compare-and-set conflict explained, watches an
// instance turn critical without a reload, sees a leader change, a
// scaler's plot with its decisions and a simulation, and applies a
// route. It saves a screenshot of every page (CONSOLE_SCREENSHOTS=dir
// keeps them) and logs the page's weight and first paint.
func TestConsole(t *testing.T) {
	chromium := chromiumPath(t)
	const root = "stw_console-test-root-0123456789abcdefghijklmn"
	d := startDev(t, "STEWARD_AUTH=on", "STEWARD_AUTH_BOOTSTRAP_TOKEN="+root)
	hc := &http.Client{Transport: bearer{root}, Timeout: 40 * time.Second}
	waitReadyWith(t, hc, d.gateway+"/readyz", d.gateway+"/v1/services", d.gateway+"/v1/kv?prefix=/", d.gateway+"/v1/elections", d.gateway+"/v1/scalers")
	api := func(method, path, body string) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, d.gateway+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode/100 != 2 {
			t.Fatalf("%s %s = %s %s", method, path, res.Status, b)
		}
		return b
	}

	b := newBrowser(t, chromium)
	run, value, text, waitText, shot, noProblems := b.run, b.value, b.text, b.waitText, b.shot, b.noProblems

	// The page loads without a token: its first API call answers 401 and
	// the login form shows.
	run("open the console", chromedp.Navigate(d.gateway+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#login #token")))
	pageBytes, pageRequests := b.traffic()
	fcp := value("first paint", `performance.getEntriesByName('first-contentful-paint')[0]?.startTime`)
	t.Logf("console load: %d requests, %.1f KB transferred up to the login form; first contentful paint at %.0f ms", pageRequests, pageBytes/1024, fcp)

	// Log in; the overview lists Steward's own services and, after two
	// scrapes of /metrics, the request rates.
	run("log in", chromedp.SendKeys(chromedp.CSS("#token"), root), chromedp.Click(chromedp.CSS("#login-submit")))
	waitText("overview services", "#overview-services", "steward-config")
	if s := text("#overview-services"); !strings.Contains(s, "warning") || !strings.Contains(s, "critical") {
		t.Errorf("overview's services: %q, want passing, warning and critical counts", s)
	}
	waitText("overview rates", "#traffic", "requests/s")
	if s := text("#cluster"); !strings.Contains(s, "not available from this gateway") && !strings.Contains(s, "replicas") {
		t.Errorf("overview's replicas: %q, want the replica table or the note that this gateway has no /gateway/cluster", s)
	}
	shot("overview")

	// Config: create a key, then edit it while someone else writes it:
	// the 412 and what changed are shown.
	run("config page", chromedp.Navigate(d.gateway+"/ui/#/config"), chromedp.WaitVisible(chromedp.CSS("#new-key")))
	run("new key", chromedp.SendKeys(chromedp.CSS("#new-key"), "/console/feature"), chromedp.Click(chromedp.CSS("#create-key")),
		chromedp.WaitVisible(chromedp.CSS("#value")), chromedp.SetValue(chromedp.CSS("#value"), `{"enabled": true}`), chromedp.Click(chromedp.CSS("#save")))
	waitText("created", "#save-result", "Saved at revision")
	waitText("listed", "#keys", "console/")
	api(http.MethodPut, "/v1/kv/console/feature", `{"enabled": true, "owner": "someone-else"}`)
	run("edit", chromedp.SetValue(chromedp.CSS("#value"), `{"enabled": false}`), chromedp.Click(chromedp.CSS("#save")))
	waitText("conflict", "#conflict", "412")
	// The first diff is what the other writer changed.
	if s := text("#conflict pre.diff"); !strings.Contains(s, `+   "owner": "someone-else"`) {
		t.Errorf("what changed on the server, as shown = %q, want the other writer's change as a diff line", s)
	}
	shot("config-conflict")
	run("take the server's version", chromedp.Click(chromedp.CSS("#take-server")))
	waitText("history", "#history", "revision 2")
	shot("config")

	// A key under a lease: the page lists the lease, and the lease its keys.
	var lease struct {
		ID int64 `json:"id"`
	}
	if err := json.Unmarshal(api(http.MethodPost, "/v1/leases", `{"ttl":"5m"}`), &lease); err != nil {
		t.Fatal(err)
	}
	api(http.MethodPut, fmt.Sprintf("/v1/kv/console/session?lease=%d", lease.ID), `"s-1"`)
	run("a prefix", chromedp.Navigate(d.gateway+"/ui/#/config//console/"))
	waitText("the lease listed", "#page-leases", fmt.Sprintf("lease %d", lease.ID))
	run("show the lease", chromedp.Click(chromedp.CSS("#page-leases button")))
	waitText("the lease's keys", "#leases", "/console/session")

	// Services: an instance with a TTL check passes while heartbeats come,
	// and the page shows it turn critical once they stop, with no reload.
	api(http.MethodPut, "/v1/services/console-web/instances/web-1",
		`{"address":"127.0.0.1","port":9000,"tags":["v1","console"],"zone":"a","version":"1.0","check":{"ttl":"5s","deregisterAfter":"10m"}}`)
	stop := make(chan struct{})
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				req, _ := http.NewRequest(http.MethodPut, d.gateway+"/v1/services/console-web/instances/web-1/heartbeat", nil)
				if res, err := hc.Do(req); err == nil {
					res.Body.Close()
				}
			}
		}
	}()
	// The earlier pages' requests may have filled the resource timing
	// buffer, which is read below to see the blocking queries.
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`performance.clearResourceTimings(), true`)); err != nil {
		t.Fatalf("clear the resource timings: %v", err)
	}
	run("services page", chromedp.Navigate(d.gateway+"/ui/#/services/console-web"),
		chromedp.WaitVisible(chromedp.CSS(`[data-instance="web-1"][data-status="passing"]`)))
	waitText("the list's passing count", `#service-list [data-service="console-web"][data-count="passing"]`, "1")
	if s := text(`#service-list [data-service="console-web"][data-count="critical"]`); s != "0" {
		t.Errorf("the list counts console-web %q critical while it passes, want 0", s)
	}
	close(stop)
	<-beats
	run("critical, live", chromedp.WaitVisible(chromedp.CSS(`[data-instance="web-1"][data-status="critical"]`)))
	waitText("the detail's counts", "#service-detail", "1 instance: 0 passing, 0 warning, 1 critical")
	// The list beside it follows a blocking query: it counts the instance
	// critical too, without a reload.
	waitText("the list's critical count", `#service-list [data-service="console-web"][data-count="critical"]`, "1")
	waitText("the list's passing count", `#service-list [data-service="console-web"][data-count="passing"]`, "0")
	if n := value("blocking queries", `performance.getEntriesByType('resource').filter((e) => /\/v1\/services\?index=\d+&wait=/.test(e.name)).length`); n < 1 {
		t.Errorf("the services list sent no blocking query (index=, wait=)")
	}
	shot("services")

	// Elections: a leads, b waits in line; a resigns and the page shows b.
	var elected struct {
		Token int64 `json:"token"`
	}
	if err := call(hc, http.MethodPost, d.gateway+"/v1/elections/console-lead/campaign", `{"candidate":"a","ttl":"30s","value":{"addr":"10.0.0.7"}}`, &elected); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	go func() {
		waiting <- call(hc, http.MethodPost, d.gateway+"/v1/elections/console-lead/campaign?wait=30s", `{"candidate":"b","ttl":"30s"}`, nil)
	}()
	run("elections page", chromedp.Navigate(d.gateway+"/ui/#/elections/console-lead"))
	waitText("a leads", "#leader-name", "a")
	waitText("b waits in line", "#leader", "Waiting1")
	api(http.MethodPost, "/v1/elections/console-lead/resign", fmt.Sprintf(`{"candidate":"a","token":%d}`, elected.Token))
	waitText("b leads, live", "#leader-name", "b")
	waitText("history", "#election-detail", "resigned")
	if err := <-waiting; err != nil {
		t.Fatalf("b's campaign: %v", err)
	}
	shot("elections")

	// Scalers: a scaler deciding every second on queue_depth from a
	// registered instance scales up, then down; the plot shows its
	// decisions, one is explained on hover, and a simulation is drawn.
	api(http.MethodPut, "/v1/services/console-app/instances/app-1", `{"address":"127.0.0.1","port":9100}`)
	api(http.MethodPut, "/v1/scalers/console-app", `{"service":"console-app","minReplicas":1,"maxReplicas":3,"syncPeriod":"1s",
		"metrics":[{"name":"queue_depth","target":{"type":"averageValue","value":10}}],
		"behavior":{"scaleDown":{"stabilizationWindow":"0s"}},
		"driver":{"type":"process","command":["sleep","3600"],"gracePeriod":"1s"}}`)
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, d.gateway+"/v1/scalers/console-app", nil)
		if res, err := hc.Do(req); err == nil {
			res.Body.Close()
		}
	})
	// The load is pushed every half second until the page shows what it
	// should make the scaler do, so that a slow machine only waits longer.
	var load atomic.Int64
	load.Store(40)
	stopLoad, loadDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(loadDone)
		for {
			select {
			case <-stopLoad:
				return
			case <-time.After(500 * time.Millisecond):
				body := fmt.Sprintf(`{"samples":[{"service":"console-app","instance":"app-1","name":"queue_depth","value":%d}]}`, load.Load())
				if res, err := hc.Post(d.gateway+"/v1/metrics", "application/json", strings.NewReader(body)); err == nil {
					res.Body.Close()
				}
			}
		}
	}()
	run("scalers page", chromedp.Navigate(d.gateway+"/ui/#/scalers/console-app"))
	waitText("a scale-up decision, live", "#decisions", "scale up 1 → 3")
	load.Store(25)
	time.Sleep(3 * time.Second)
	load.Store(4)
	waitText("a scale-down decision, live", "#decisions", "scale down")
	time.Sleep(2 * time.Second) // a few decisions after it, for the screenshot
	close(stopLoad)
	<-loadDone
	run("plot", chromedp.WaitVisible(chromedp.CSS("#scaler-plot canvas")))
	run("hover a decision", hoverMiddle("#scaler-plot .u-over"))
	waitText("decision explained", "#decision-explain", "→")
	run("simulate", chromedp.Click(chromedp.CSS("#simulate")))
	waitText("simulation", "#sim-result", "decisions")
	run("simulation plot", chromedp.WaitVisible(chromedp.CSS("#sim-plot canvas")))
	shot("scaler")

	// Gateway: write a route document from the page and see it in force.
	run("gateway page", chromedp.Navigate(d.gateway+"/ui/#/gateway"), chromedp.WaitVisible(chromedp.CSS("#route-name")))
	run("apply a route", chromedp.SendKeys(chromedp.CSS("#route-name"), "console-api"),
		chromedp.SetValue(chromedp.CSS("#route-doc"), `{"match":{"pathPrefix":"/console-api/"},"service":"steward-config","stripPrefix":true,"timeout":"5s"}`),
		chromedp.Click(chromedp.CSS("#apply-route")))
	waitText("route in force", "#route-result", "is in force")
	waitText("route listed", "#routes", "/console-api/")
	waitText("upstreams", "#upstreams", "")
	shot("gateway")
	res, err := hc.Get(d.gateway + "/console-api/healthz")
	if err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("GET /console-api/healthz through the route applied from the page = %v, %v", res, err)
	}
	if res != nil {
		res.Body.Close()
	}

	// On a phone's screen the pages are one column.
	run("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(d.gateway+"/ui/#/services/console-web"),
		chromedp.WaitVisible(chromedp.CSS(`[data-instance="web-1"]`)))
	if w := value("layout", `document.querySelector('.split').children[1].getBoundingClientRect().x + 1`); w > 50 {
		t.Errorf("on a phone the instances start %.0f px from the left, want one column", w-1)
	}
	if over := value("page width", `document.documentElement.scrollWidth - innerWidth + 1`); over > 1 {
		t.Errorf("on a phone the page is %.0f px wider than the screen", over-1)
	}
	shot("services-phone")

	noProblems("at the end")
	transferred, requests := b.traffic()
	t.Logf("screenshots in %s; %.1f KB transferred in all (%d requests)", b.shots, transferred/1024, requests)
}

// hoverMiddle scrolls sel into view and moves the mouse to the middle of
// its box.
func hoverMiddle(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		// Scrolled and measured in one evaluation: a live plot replaces
		// its nodes as data comes, so a node looked up by one DevTools
		// call may be gone at the next ("Could not find node with given
		// id", seen in CI from ScrollIntoView).
		box, err := chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => { const e = document.querySelector(%q); e.scrollIntoView({block: "center"}); const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()`, sel))(ctx, t)
		if err != nil {
			return err
		}
		_, err = chromedp.MouseEvent("mouseMoved", box[0], box[1])(ctx, t)
		return err
	})
}

// describeException is the message of a thrown exception, when it has one.
func describeException(d *runtime.ExceptionDetails) string {
	if d.Exception != nil && d.Exception.Description != "" {
		return d.Exception.Description
	}
	return d.URL
}

// browser is a headless Chromium tab with the helpers the console's
// tests share. It records what the tab fetched (bytes on the wire,
// headers included) and what went wrong in the page: an exception or a
// refusal by the Content-Security-Policy fails the test at the next
// screenshot or noProblems.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string

	mu          sync.Mutex
	transferred float64
	requests    int
	problems    []string
}

func newBrowser(t *testing.T, chromium string) *browser {
	t.Helper()
	b := &browser{t: t, shots: os.Getenv("CONSOLE_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = t.TempDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	actx, cancel := chromedp.NewExecAllocator(t.Context(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 900))...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf), chromedp.WithListener(b.listen))
	t.Cleanup(cancel)
	// The first Run starts the browser, which lives as long as its
	// context: no timeout on it (chromedp.Run's rule); each step has its own.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, runtime.Enable, cdp.Empty{})
		return err
	})); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b.ctx = ctx
	return b
}

func (b *browser) listen(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventLoadingFinished:
		b.transferred += ev.EncodedDataLength
		b.requests++
	case *runtime.EventExceptionThrown:
		b.problems = append(b.problems, fmt.Sprintf("exception: %s %s", ev.ExceptionDetails.Text, describeException(ev.ExceptionDetails)))
	case *cdplog.EventEntryAdded:
		if strings.Contains(ev.Entry.Text, "Content Security Policy") {
			b.problems = append(b.problems, ev.Entry.Text)
		}
	}
}

// traffic is the bytes and requests the tab fetched so far.
func (b *browser) traffic() (float64, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.transferred, b.requests
}

func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// value waits until expr is truthy and returns it.
func (b *browser) value(what string, expr string) float64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[float64](expr, chromedp.WithPollingTimeout(20*time.Second)))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// noProblems fails the test with what the page reported so far.
func (b *browser) noProblems(when string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) > 0 {
		b.t.Errorf("the page reported problems %s:\n%s", when, strings.Join(b.problems, "\n"))
		b.problems = nil
	}
}

// unlabelled lists the form controls and buttons of the page that a
// screen reader could not name.
const unlabelled = `[...document.querySelectorAll('input, textarea, select, button')]
	.filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
	.map((e) => e.outerHTML.slice(0, 120))`

// shot saves a screenshot of the page as it is, after checking that the
// page reported no problem and that each of its controls has a name.
func (b *browser) shot(name string) {
	b.t.Helper()
	b.noProblems("before the screenshot " + name)
	if bad, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](unlabelled)); err != nil || len(bad) > 0 {
		b.t.Errorf("%s: controls without a label: %q %v", name, bad, err)
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(b.shots, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("read %s: %v", sel, err)
	}
	return s
}

// waitText waits until sel's text contains want.
func (b *browser) waitText(what, sel, want string) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(60*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		now, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q)?.textContent ?? "(none)"`, sel)))
		b.t.Fatalf("%s: %s never contained %q: %v; it reads %q", what, sel, want, err, now)
	}
}

// TestConsoleUpstreamContract renders the two gateway endpoints the
// console reads besides the public API, /gateway/cluster (Overview) and
// /gateway/upstreams (Gateway), from documents in the shape they are
// specified to answer, served beside the console's embedded files; the
// rest of the API answers empty.
func TestConsoleUpstreamContract(t *testing.T) {
	chromium := chromiumPath(t)
	mux := http.NewServeMux()
	mux.Handle("/ui/", console.Handler())
	answer := func(path, doc string) {
		mux.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, doc)
		})
	}
	answer("/gateway/cluster", `{"services":[{"service":"config","stream":{"name":"STEWARD_CONFIG","messages":123,"bytes":4567,
		"firstSequence":1,"lastSequence":123,"replicas":3,"leader":"n1","peers":[{"name":"n2","current":true,"lag":0}]},
		"replicas":[{"id":"config-0","url":"http://127.0.0.1:8081","health":"passing","ready":true,"voter":true,"revision":118,"appliedSequence":123,"lag":0,"error":""},
		{"id":"config-1","url":"http://127.0.0.1:9081","health":"critical","ready":false,"voter":false,"revision":0,"appliedSequence":0,"lag":0,"error":"connection refused"}],"error":""},
		{"service":"registry","stream":null,"replicas":[],"error":"no replica answers"}]}`)
	answer("/gateway/upstreams", `{"services":[{"service":"api","versions":["v1","v2"],"instances":[
		{"id":"api-1","address":"127.0.0.1:9001","version":"v1","zone":"a","ejected":false,"inFlight":0,"ewmaMs":1.25},
		{"id":"api-2","address":"127.0.0.1:9002","version":"v2","zone":"b","ejected":true,"inFlight":3,"ewmaMs":40}]}]}`)
	answer("/v1/services", `[]`)
	answer("/gateway/routes", `{"revision":0,"routes":[],"rejected":[]}`)
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Content-Type", "text/plain") })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := newBrowser(t, chromium)
	b.run("overview", chromedp.Navigate(srv.URL+"/ui/#/overview"))
	b.waitText("a replica", "#cluster", "config-0")
	for _, want := range []string{"STEWARD_CONFIG", "123 messages", "leader n1", "n2 (current, lag 0)", "voter", "observer", "connection refused", "Unreachable: no replica answers"} {
		if s := b.text("#cluster"); !strings.Contains(s, want) {
			t.Errorf("overview's replicas = %q, want %q in it", s, want)
		}
	}
	b.shot("overview-cluster")
	b.run("gateway", chromedp.Navigate(srv.URL+"/ui/#/gateway"))
	b.waitText("an upstream", "#upstreams", "api-1")
	for _, want := range []string{"versions v1, v2", "127.0.0.1:9002", "ejected", "1.25 ms", "40.00 ms"} {
		if s := b.text("#upstreams"); !strings.Contains(s, want) {
			t.Errorf("gateway's upstreams = %q, want %q in it", s, want)
		}
	}
	b.shot("gateway-upstreams")
	b.noProblems("at the end")
}
