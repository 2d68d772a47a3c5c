package lease_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/services/election/lease"
)

// FuzzApply applies arbitrary entries after a fixed history: Apply must
// not panic on anything the log carries, must answer a decodable result,
// and must do the same on a machine restored from a snapshot, so that
// replicas that replayed and replicas that restored agree.
func FuzzApply(f *testing.F) {
	for _, s := range []string{
		`{"op":"campaign","name":"a","candidate":"c9","ttl":1000000000,"hold":1000000000}`,
		`{"op":"resign","name":"a","candidate":"c1","token":1}`,
		`{"op":"renew","name":"a","candidate":"c1","token":1}`,
		`{"op":"expire","name":"a","since":3}`, `{"op":"expire","name":"a","candidate":"c2","since":9}`,
		`{"op":"keep","name":"a","candidate":"c2"}`, `{"op":"withdraw","name":"b","candidate":"c2"}`,
		`{"op":"campaign","name":"","candidate":"","ttl":-1}`, `{"op":"campaign","name":"a","ttl":9223372036854775807}`,
		`{"op":"nope"}`, `{}`, `null`, `[]`, `"x"`, `{"op":"campaign","name":"a","value":{"x":[1,2]}}`,
	} {
		f.Add([]byte(s), int64(500))
		f.Add([]byte(s), int64(5000))
	}
	history := []lease.Command{
		{Op: "campaign", Name: "a", Candidate: "c1", TTL: 2 * time.Second},
		{Op: "campaign", Name: "a", Candidate: "c2", TTL: time.Second, Hold: 3 * time.Second},
		{Op: "campaign", Name: "b", Candidate: "c3", TTL: time.Second},
	}
	f.Fuzz(func(t *testing.T, cmd []byte, atMillis int64) {
		m := lease.New()
		for i, c := range history {
			b, _ := json.Marshal(c)
			m.Apply(qlog.Entry{Revision: int64(i + 1), Time: epoch, Cmd: b})
		}
		var snap bytes.Buffer
		if err := m.Snapshot(&snap); err != nil {
			t.Fatal(err)
		}
		restored := lease.New()
		if err := restored.Restore(&snap); err != nil {
			t.Fatal(err)
		}
		e := qlog.Entry{Revision: int64(len(history) + 1), Time: epoch.Add(time.Duration(atMillis) * time.Millisecond), Cmd: cmd}
		res, evs := m.Apply(e)
		res2, evs2 := restored.Apply(e)
		var r lease.Result
		if err := json.Unmarshal(res, &r); err != nil || r.Status == "" {
			t.Fatalf("result %s does not decode: %v", res, err)
		}
		if !bytes.Equal(res, res2) || len(evs) != len(evs2) {
			t.Fatalf("restored machine answered %s %v, the original %s %v", res2, evs2, res, evs)
		}
		var a, b bytes.Buffer
		_ = m.Snapshot(&a)
		_ = restored.Snapshot(&b)
		if !bytes.Equal(a.Bytes(), b.Bytes()) {
			t.Fatalf("snapshots differ after %s", cmd)
		}
	})
}
