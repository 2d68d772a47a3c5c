package proxy

import (
	"fmt"
	"testing"
	"time"
)

func TestVersionCap(t *testing.T) {
	var set versionSet
	for i := range MaxVersions + 4 {
		set.series(fmt.Sprintf("v%d", i), time.Now).record(outcomeOK, time.Millisecond)
	}
	set.series("", time.Now).record(outcome5xx, time.Millisecond)
	all := set.all()
	if len(all) != MaxVersions+1 || all[MaxVersions].version != OtherVersion {
		t.Fatalf("%d series, the last %q; want %d, the last %q", len(all), all[len(all)-1].version, MaxVersions+1, OtherVersion)
	}
	// The 4 versions past the cap and the unversioned one.
	if c := all[MaxVersions].snapshot(); c.Requests != 5 || c.Failures != 1 {
		t.Fatalf("other = %+v, want 5 requests, 1 failure", c)
	}
	if c := all[0].snapshot(); c.Version != "v0" || c.Requests != 1 {
		t.Fatalf("first = %+v, want v0 with 1 request", c)
	}
}

func TestVersionLatencyBuckets(t *testing.T) {
	var set versionSet
	s := set.series("v1", time.Now)
	for _, d := range []time.Duration{100 * time.Microsecond, 500 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		s.record(outcomeOK, d)
	}
	s.record(outcomeCanceled, time.Hour)
	c := s.snapshot()
	// Bounds 0.5 ms, 1 ms, 2 ms, 4 ms, ...: 100 µs and 500 µs within
	// the first, 3 ms within the fourth, a minute beyond them all.
	want := []uint64{2, 2, 2, 3}
	for i, w := range want {
		if c.Cumulative[i] != w {
			t.Fatalf("Cumulative = %v, want %v first", c.Cumulative, want)
		}
	}
	if last := c.Cumulative[len(c.Cumulative)-1]; last != 3 || c.Requests != 4 {
		t.Fatalf("within the last bound %d, requests %d; want 3 and 4 (a canceled attempt is neither)", last, c.Requests)
	}
}

// TestVersionRecordAllocates nothing once a version has been seen: it
// runs on every attempt.
func TestVersionRecordAllocatesNothing(t *testing.T) {
	var set versionSet
	for i := range 5 {
		set.series(fmt.Sprintf("v%d", i), time.Now)
	}
	if n := testing.AllocsPerRun(1000, func() {
		set.series("v4", time.Now).record(outcome5xx, 3*time.Millisecond)
	}); n != 0 {
		t.Fatalf("%g allocations per attempt, want 0", n)
	}
}

// BenchmarkVersionRecord is what the per-version signals add to an
// attempt: finding the version's series among a service's five, and
// counting the attempt.
func BenchmarkVersionRecord(b *testing.B) {
	var set versionSet
	for i := range 5 {
		set.series(fmt.Sprintf("v%d", i), time.Now)
	}
	b.ReportAllocs()
	for b.Loop() {
		set.series("v4", time.Now).record(outcomeOK, 3*time.Millisecond)
	}
}
