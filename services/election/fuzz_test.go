package election_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog/qlogtest"
)

// fuzzExchange sends one request and checks what every answer must keep
// (DESIGN.md guarantee 6): 2xx, or a 4xx problem+json, never a 5xx. It
// returns the status, the revision the answer reflects and the body.
func fuzzExchange(t *testing.T, req *http.Request) (int, int64, []byte) {
	t.Helper()
	res, err := fuzzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err) // includes OpenAPI mismatches
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := strconv.ParseInt(res.Header.Get("X-Steward-Revision"), 10, 64)
	if err != nil {
		t.Fatalf("X-Steward-Revision %q", res.Header.Get("X-Steward-Revision"))
	}
	switch {
	case res.StatusCode >= 200 && res.StatusCode < 300:
	case res.StatusCode >= 400 && res.StatusCode < 500:
		var p struct{ Status int }
		if res.Header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != res.StatusCode {
			t.Fatalf("%d without a problem: %s", res.StatusCode, body)
		}
	default:
		t.Fatalf("%s %s = %d: %s", req.Method, req.URL, res.StatusCode, body)
	}
	return res.StatusCode, rev, body
}

// FuzzCampaign sends arbitrary bodies and waits to POST campaign of a
// real replica on a real (embedded) NATS, where someone else leads. Bad
// input (400, 413, 415) proposes nothing; a decodable campaign is one
// entry answered 409 (someone leads) or, for the leader's own ID, 200
// with the leader's token; a wait ends in 409 with the candidate out of
// the line again.
func FuzzCampaign(f *testing.F) {
	for _, s := range []struct{ body, wait string }{
		{`{"candidate":"c2","ttl":"10s"}`, ""}, {`{"candidate":"leader","ttl":"1h"}`, ""},
		{`{"candidate":"c2","ttl":"1s","value":{"addr":"x"}}`, "1ms"}, {`{"candidate":"c2","ttl":"1s","value":null}`, "0"},
		{`{"CANDIDATE":"c3","TTL":"2s"}`, ""}, {`{"candidate":"c","ttl":"1s","value":1e400}`, ""},
		{`{"candidate":"c","ttl":"0.5s"}`, ""}, {`{"candidate":"c","ttl":"1h0m1s"}`, ""}, {`{"candidate":"","ttl":"1s"}`, ""},
		{`{"candidate":"\u0000","ttl":"1s"}`, ""}, {`{"candidate":"\ud800","ttl":"1s"}`, ""}, {"{\"candidate\":\"\xff\",\"ttl\":\"1s\"}", ""},
		{`{"candidate":"c","ttl":"1s","x":1}`, ""}, {`{"candidate":1,"ttl":"1s"}`, ""}, {`[]`, ""}, {``, ""}, {`null`, ""},
		{`{"candidate":"c","ttl":"1s"}x`, ""}, {`{"candidate":"c","ttl":"1s"}`, "-1s"}, {`{"candidate":"c","ttl":"1s"}`, "1e3s"},
		{`{"candidate":"c","ttl":"1s"}`, "5m1s"}, {`{"candidate":"c","ttl":"1s"}`, "%zz"},
	} {
		f.Add([]byte(s.body), s.wait)
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), "election-0", nil)
	u := n.url + "/v1/elections/fuzz/campaign"
	r, err := do(f.Context(), "POST", u, campaignBody("leader", "1h"))
	if err != nil || r.status != 200 {
		f.Fatalf("campaign of the leader = %v, %v", r, err)
	}
	leaderToken := r.num("token")
	f.Fuzz(func(t *testing.T, body []byte, wait string) {
		if d, err := time.ParseDuration(wait); err == nil && d > 100*time.Millisecond {
			t.Skip("long waits are not fuzzed: they would only slow the fuzzer")
		}
		target := u
		if wait != "" {
			target += "?wait=" + url.QueryEscape(wait)
		}
		req, err := http.NewRequest("POST", target, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		before := n.rep.Log.Revision()
		status, rev, raw := fuzzExchange(t, req)
		after := n.rep.Log.Revision()
		var got struct {
			Leader string
			Token  int64
		}
		_ = json.Unmarshal(raw, &got)
		switch status {
		case 200:
			if got.Leader != "leader" || got.Token != leaderToken {
				t.Fatalf("200 = %s; only the leader's own ID may win here", raw)
			}
		case 409:
			if after == before {
				t.Fatalf("409 proposed nothing: %s", raw)
			}
			if q := queueLen(t, n.url+"/v1/elections/fuzz"); q != 0 {
				t.Fatalf("after a wait ended %d candidates are still in line", q)
			}
		case 400, 413, 415:
			if rev != before || after != before {
				t.Fatalf("%d moved the revision: %d before, %d after, %d in the answer: %s", status, before, after, rev, raw)
			}
		default:
			t.Fatalf("campaign = %d: %s", status, raw)
		}
	})
}

// FuzzRenewResign sends arbitrary bodies to renew and resign. Bad input
// proposes nothing; anything else is one entry: 409 for a token that does
// not lead, and for the leader's own token 200 (a resign is followed by a
// new campaign, so there is always a leader to fuzz against).
func FuzzRenewResign(f *testing.F) {
	for _, s := range []string{
		`{"candidate":"leader","token":TOKEN}`, `{"candidate":"leader","token":1}`, `{"candidate":"other","token":TOKEN}`,
		`{"candidate":"leader","token":0}`, `{"candidate":"leader","token":-1}`, `{"candidate":"leader","token":9223372036854775807}`,
		`{"candidate":"leader","token":9223372036854775808}`, `{"candidate":"leader","token":1.0}`, `{"candidate":"leader","token":"1"}`,
		`{"candidate":"leader"}`, `{"token":1}`, `{}`, `null`, ``, `{"candidate":"leader","token":1,"x":0}`, `{"Candidate":"leader","Token":TOKEN}`,
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	n := startNode(f, qlogtest.StartServer(f).Connect(f), "election-0", nil)
	u := n.url + "/v1/elections/fuzz"
	lead := func(t testing.TB) int64 {
		return expect(t, call(t, "POST", u+"/campaign", campaignBody("leader", "1h")), 200).num("token")
	}
	token := lead(f)
	f.Fuzz(func(t *testing.T, body []byte, resign bool) {
		op := "/renew"
		if resign {
			op = "/resign"
		}
		body = bytes.ReplaceAll(body, []byte("TOKEN"), []byte(strconv.FormatInt(token, 10)))
		req, err := http.NewRequest("POST", u+op, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		before := n.rep.Log.Revision()
		status, rev, raw := fuzzExchange(t, req)
		after := n.rep.Log.Revision()
		switch status {
		case 200:
			if after != before+1 || rev != after {
				t.Fatalf("200 at revision %d; the log went from %d to %d", rev, before, after)
			}
			if resign {
				token = lead(t)
			}
		case 409:
			if after != before+1 {
				t.Fatalf("409 is one logged no-op, but the log went from %d to %d", before, after)
			}
		case 400, 413, 415:
			if rev != before || after != before {
				t.Fatalf("%d moved the revision: %d before, %d after: %s", status, before, after, raw)
			}
		default:
			t.Fatalf("%s = %d: %s", op, status, raw)
		}
	})
}
