package clusterbench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stewardhq/steward/bench/internal/harness"
)

// The cluster3 section's HTTP/JSON rows through wrk, an external load
// generator (closed loop: each connection sends its next request when the
// answer arrives), one process per run against replica/member 0.

// wrkBase64 is a Lua base64 encoder (wrk runs LuaJIT, Lua 5.1: no bit
// operators), for etcd's keys.
const wrkBase64 = `
local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {math.floor(n / 262144) % 64, math.floor(n / 4096) % 64, math.floor(n / 64) % 64, n % 64}
    for j = 1, 4 do
      if (j == 3 and not b) or (j == 4 and not c) then
        out[#out + 1] = '='
      else
        out[#out + 1] = b64chars:sub(q[j] + 1, q[j] + 1)
      end
    end
  end
  return table.concat(out)
end
`

// wrkThreads numbers wrk's threads, for unique keys per thread.
const wrkThreads = `
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
counter = 0
`

// wrkScripts writes the Lua scripts of the wrk rows into dir and returns
// their paths by row key and system; run is part of every written key.
func wrkScripts(dir string, value []byte, readKey string) (map[string]string, error) {
	scripts := map[string]string{
		sysSteward + "-put": wrkThreads + fmt.Sprintf(`
local body = %q
request = function()
  counter = counter + 1
  return wrk.format("PUT", "/v1/kv/bench/w" .. RUN .. "-" .. tid .. "-" .. counter, {["Content-Type"] = "application/json"}, body)
end
`, value),
		sysSteward + "-get": fmt.Sprintf(`wrk.method = "GET"
wrk.path = "/v1/kv%s"
`, readKey),
		sysEtcdJSON + "-put": wrkBase64 + wrkThreads + fmt.Sprintf(`
local value = %q
request = function()
  counter = counter + 1
  local body = '{"key":"' .. b64("w" .. RUN .. "-" .. tid .. "-" .. counter) .. '","value":"' .. value .. '"}'
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"] = "application/json"}, body)
end
`, b64(value)),
		sysEtcdJSON + "-get": fmt.Sprintf(`wrk.method = "POST"
wrk.path = "/v3/kv/range"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"key":"%s","serializable":false}'
`, b64([]byte(readKey))),
	}
	paths := map[string]string{}
	for name, s := range scripts {
		p := filepath.Join(dir, name+".lua")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			return nil, err
		}
		paths[name] = p
	}
	return paths, nil
}

var (
	wrkReqIn    = regexp.MustCompile(`(\d+) requests in ([0-9.]+[a-z]+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s|m)\s*$`)
	wrkSockErrs = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// runWrk runs wrk once with script against base for d with conns
// connections (one thread per 32), run numbering the written keys.
func runWrk(ctx context.Context, base, script string, conns, run int, d time.Duration) harness.RunStats {
	fail := func(err error) harness.RunStats { return harness.RunStatsOf(0, 1, err, d, 0, 0) }
	secs := max(1, int(d.Round(time.Second)/time.Second))
	body, err := os.ReadFile(script)
	if err != nil {
		return fail(err)
	}
	// The run number, as a global before the script.
	runScript := strings.TrimSuffix(script, ".lua") + "-" + strconv.Itoa(run) + ".lua"
	if err := os.WriteFile(runScript, append([]byte(fmt.Sprintf("RUN = %d\n", run)), body...), 0o644); err != nil {
		return fail(err)
	}
	threads := max(1, min(conns, 2))
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns), "-d"+strconv.Itoa(secs)+"s",
		"--timeout", "10s", "--latency", "-s", runScript, base).CombinedOutput()
	if err != nil {
		return fail(fmt.Errorf("wrk: %v: %s", err, out))
	}
	m := wrkReqIn.FindSubmatch(out)
	if m == nil {
		return fail(fmt.Errorf("wrk printed no request count: %s", out))
	}
	ops, _ := strconv.Atoi(string(m[1]))
	elapsed, err := time.ParseDuration(string(m[2]))
	if err != nil {
		return fail(fmt.Errorf("wrk's duration %q: %w", m[2], err))
	}
	pct := map[string]time.Duration{}
	for _, p := range wrkPct.FindAllSubmatch(out, -1) {
		d, err := time.ParseDuration(string(p[2]) + string(p[3]))
		if err != nil {
			return fail(fmt.Errorf("wrk's percentile %q: %w", p[0], err))
		}
		pct[string(p[1])] = d
	}
	if len(pct) != 2 {
		return fail(fmt.Errorf("wrk printed no 50%%/99%% latency: %s", out))
	}
	errs := 0
	if s := wrkSockErrs.FindSubmatch(out); s != nil {
		for _, v := range s[1:] {
			k, _ := strconv.Atoi(string(v))
			errs += k
		}
	}
	if s := wrkNon2xx.FindSubmatch(out); s != nil {
		k, _ := strconv.Atoi(string(s[1]))
		errs += k
	}
	var firstErr error
	if errs > 0 {
		firstErr = fmt.Errorf("wrk counted %d errors: %s", errs, out)
	}
	return harness.RunStatsOf(ops, errs, firstErr, elapsed, pct["50"], pct["99"])
}
