package wire

import (
	"encoding/json"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{`"10s"`, 10 * time.Second, true},
		{`"1m30s"`, 90 * time.Second, true},
		{`"250ms"`, 250 * time.Millisecond, true},
		{`"10"`, 0, false},
		{`10`, 0, false},
		{`"soon"`, 0, false},
		{`null`, 0, false},
	} {
		var d Duration
		err := json.Unmarshal([]byte(tt.in), &d)
		if (err == nil) != tt.ok || d.Std() != tt.want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v, ok %v", tt.in, d.Std(), err, tt.want, tt.ok)
		}
		if tt.ok {
			if b, _ := json.Marshal(d); string(b) != `"`+tt.want.String()+`"` {
				t.Errorf("Marshal(%v) = %s", tt.want, b)
			}
		}
	}
}
