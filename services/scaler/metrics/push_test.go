package metrics_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/services/scaler/metrics"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func goodSample() metrics.Sample {
	return metrics.Sample{Service: "web", Instance: "web-1", Name: "http_requests_in_flight", Value: 3, Request: 0.5, Timestamp: t0}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *metrics.Push)
		want   string // "" for valid, else the start of the message
	}{
		{"good", func(*metrics.Push) {}, ""},
		{"service-wide, no timestamp", func(p *metrics.Push) { p.Samples[0].Instance, p.Samples[0].Timestamp = "", time.Time{} }, ""},
		{"name with colons", func(p *metrics.Push) { p.Samples[0].Name = "job:requests:rate5m" }, ""},
		{"name of 200 bytes", func(p *metrics.Push) { p.Samples[0].Name = strings.Repeat("a", 200) }, ""},
		{"negative value", func(p *metrics.Push) { p.Samples[0].Value = -1 }, ""},
		{"instance of 256 bytes, not an ID", func(p *metrics.Push) { p.Samples[0].Instance = strings.Repeat("é", 128) }, ""},
		{"timestamp a minute ahead", func(p *metrics.Push) { p.Samples[0].Timestamp = t0.Add(time.Minute) }, ""},
		{"timestamp long ago", func(p *metrics.Push) { p.Samples[0].Timestamp = t0.Add(-time.Hour) }, ""},
		{"10000 samples", func(p *metrics.Push) { p.Samples = repeat(goodSample(), metrics.MaxPushSamples) }, ""},

		{"no samples", func(p *metrics.Push) { p.Samples = nil }, "samples: want at least one"},
		{"too many samples", func(p *metrics.Push) { p.Samples = repeat(goodSample(), metrics.MaxPushSamples+1) }, "samples: 10001 samples, want at most 10000"},
		{"empty service", func(p *metrics.Push) { p.Samples[0].Service = "" }, "samples[0].service:"},
		{"service upper case", func(p *metrics.Push) { p.Samples[1].Service = "Web" }, "samples[1].service:"},
		{"service with a dot", func(p *metrics.Push) { p.Samples[1].Service = "web.eu" }, "samples[1].service:"},
		{"service of 64 bytes", func(p *metrics.Push) { p.Samples[1].Service = strings.Repeat("a", 64) }, "samples[1].service:"},
		{"service huge", func(p *metrics.Push) { p.Samples[1].Service = strings.Repeat("a", 1<<20) }, "samples[1].service: 1048576 bytes"},
		{"instance of 257 bytes", func(p *metrics.Push) { p.Samples[2].Instance = strings.Repeat("a", 257) }, "samples[2].instance: 257 bytes"},
		{"instance with a newline", func(p *metrics.Push) { p.Samples[2].Instance = "web\n1" }, "samples[2].instance:"},
		{"instance with DEL", func(p *metrics.Push) { p.Samples[2].Instance = "web\x7f" }, "samples[2].instance:"},
		{"instance with C1 control", func(p *metrics.Push) { p.Samples[2].Instance = "web\u0085" }, "samples[2].instance:"},
		{"instance not UTF-8", func(p *metrics.Push) { p.Samples[2].Instance = "web\xff" }, "samples[2].instance: not UTF-8"},
		{"empty name", func(p *metrics.Push) { p.Samples[0].Name = "" }, "samples[0].name:"},
		{"name starts with a digit", func(p *metrics.Push) { p.Samples[0].Name = "1xx" }, "samples[0].name:"},
		{"name with a dot", func(p *metrics.Push) { p.Samples[0].Name = "http.requests" }, "samples[0].name:"},
		{"name with a dash", func(p *metrics.Push) { p.Samples[0].Name = "http-requests" }, "samples[0].name:"},
		{"name of 201 bytes", func(p *metrics.Push) { p.Samples[0].Name = strings.Repeat("a", 201) }, "samples[0].name: 201 bytes"},
		{"value NaN", func(p *metrics.Push) { p.Samples[3].Value = math.NaN() }, "samples[3].value: NaN"},
		{"value +Inf", func(p *metrics.Push) { p.Samples[3].Value = math.Inf(1) }, "samples[3].value: +Inf"},
		{"request -Inf", func(p *metrics.Push) { p.Samples[3].Request = math.Inf(-1) }, "samples[3].request:"},
		{"request negative", func(p *metrics.Push) { p.Samples[3].Request = -0.5 }, "samples[3].request: -0.5"},
		{"timestamp too far ahead", func(p *metrics.Push) { p.Samples[3].Timestamp = t0.Add(time.Minute + time.Nanosecond) }, "samples[3].timestamp:"},
		{"first bad field wins", func(p *metrics.Push) { p.Samples[2].Value, p.Samples[3].Name = math.NaN(), "" }, "samples[2].value:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metrics.Push{Samples: repeat(goodSample(), 4)}
			tt.change(&p)
			checkValidate(t, p.Validate(t0), tt.want)
		})
	}
}

// checkValidate fails t unless err is nil (want "") or a short
// fault.Invalid starting with want.
func checkValidate(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("Validate = %v, want nil", err)
	case want == "":
	case err == nil:
		t.Fatalf("Validate = nil, want %q...", want)
	case !strings.HasPrefix(err.Error(), want):
		t.Fatalf("Validate = %q, want %q...", trim(err.Error()), want)
	case fault.KindOf(err) != fault.Invalid:
		t.Fatalf("KindOf(Validate) = %v, want %v", fault.KindOf(err), fault.Invalid)
	case len(err.Error()) > 500:
		t.Fatalf("Validate = %d bytes of message, want a short one", len(err.Error()))
	}
}

func repeat(s metrics.Sample, n int) []metrics.Sample {
	out := make([]metrics.Sample, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// The wire form: omitted instance, request and timestamp stay zero, and a
// zero timestamp is left out.
func TestSampleJSON(t *testing.T) {
	var p metrics.Push
	if err := json.Unmarshal([]byte(`{"samples":[{"service":"web","name":"queue_depth","value":7}]}`), &p); err != nil {
		t.Fatal(err)
	}
	want := metrics.Sample{Service: "web", Name: "queue_depth", Value: 7}
	if len(p.Samples) != 1 || p.Samples[0] != want {
		t.Fatalf("decoded %+v, want [%+v]", p.Samples, want)
	}
	b, err := json.Marshal(p.Samples[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"service":"web","name":"queue_depth","value":7}`; got != want {
		t.Fatalf("Marshal = %s, want %s", got, want)
	}
}
