package control

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// get takes the next key, failing the test if none comes within a
// second.
func get(t *testing.T, q *queue) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if k, ok := q.Get(); ok {
			got <- k
		}
	}()
	select {
	case k := <-got:
		return k
	case <-time.After(time.Second):
		q.ShutDown() // ends the Get above
		t.Fatal("Get() blocked, want a key")
		return ""
	}
}

// work starts n workers that process the queue's keys with fn until it
// shuts down.
func work(wg *sync.WaitGroup, q *queue, n int, fn func(key string)) {
	for range n {
		wg.Go(func() {
			for {
				k, ok := q.Get()
				if !ok {
					return
				}
				fn(k)
				q.Done(k)
			}
		})
	}
}

func TestQueueDedupesPendingKeys(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	defer q.ShutDown()
	for _, k := range []string{"a", "b", "a", "a", "b", "c"} {
		q.Add(k)
	}
	if n := q.Len(); n != 3 {
		t.Fatalf("Len() = %d, want 3", n)
	}
	for _, want := range []string{"a", "b", "c"} {
		if k := get(t, q); k != want {
			t.Fatalf("Get() = %q, want %q", k, want)
		}
		q.Done(want)
	}
	if n := q.Len(); n != 0 {
		t.Fatalf("Len() = %d after taking all, want 0", n)
	}
}

func TestQueueOneWorkerPerKey(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	q.Add("a")
	k := get(t, q)
	// Added while held: not handed out again until Done.
	q.Add("a")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len() = %d while a is held, want 0", n)
	}
	q.Done(k)
	if k := get(t, q); k != "a" {
		t.Fatalf("Get() after Done = %q, want a again", k)
	}
	q.Done("a")

	// Under load: many workers, few keys, never two on one key.
	var (
		held      sync.Map
		overlaps  atomic.Int32
		processed atomic.Int32
		wg        sync.WaitGroup
	)
	work(&wg, q, 8, func(k string) {
		if _, loaded := held.LoadOrStore(k, true); loaded {
			overlaps.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
		held.Delete(k)
		processed.Add(1)
	})
	for i := range 2000 {
		q.Add(string(rune('a' + i%3)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	q.ShutDown()
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Fatalf("a key was held by two workers %d times", n)
	}
	if processed.Load() == 0 {
		t.Fatal("nothing processed")
	}
}

func TestQueueAddAfter(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	defer q.ShutDown()
	start := time.Now()
	q.AddAfter("late", time.Hour)
	q.AddAfter("late", 50*time.Millisecond) // the earlier delay wins
	q.AddAfter("late", time.Hour)
	q.AddAfter("now", 0)
	if k := get(t, q); k != "now" {
		t.Fatalf("Get() = %q, want now (a zero delay adds at once)", k)
	}
	q.Done("now")
	if n := q.Len(); n != 0 {
		t.Fatalf("Len() = %d before the delay passed, want 0", n)
	}
	if k := get(t, q); k != "late" {
		t.Fatalf("Get() = %q, want late", k)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("late came after %v, want at least 50ms", d)
	}
	q.Done("late")
	// The replaced hour-long delays do not fire, and one AddAfter of a
	// key already pending adds nothing.
	q.Add("x")
	q.AddAfter("x", time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	if n := q.Len(); n != 1 {
		t.Fatalf("Len() = %d, want 1 (x once)", n)
	}
}

func TestQueueBackoff(t *testing.T) {
	tests := []struct {
		name string
		n    int
		want time.Duration
	}{
		{"first", 0, 10 * time.Millisecond},
		{"second", 1, 20 * time.Millisecond},
		{"fourth", 3, 80 * time.Millisecond},
		{"capped", 5, 250 * time.Millisecond},
		{"far past the cap", 200, 250 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := backoff(10*time.Millisecond, 250*time.Millisecond, tt.n); got != tt.want {
				t.Errorf("backoff(10ms, 250ms, %d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}

	q := newQueue(20*time.Millisecond, time.Second)
	defer q.ShutDown()
	var waits []time.Duration
	for range 3 {
		start := time.Now()
		q.AddRateLimited("k")
		q.Done(get(t, q))
		waits = append(waits, time.Since(start))
	}
	if n := q.NumRequeues("k"); n != 3 {
		t.Fatalf("NumRequeues(k) = %d, want 3", n)
	}
	for i, min := range []time.Duration{20 * time.Millisecond, 40 * time.Millisecond, 80 * time.Millisecond} {
		if waits[i] < min {
			t.Fatalf("wait %d = %v, want at least %v (waits %v)", i, waits[i], min, waits)
		}
	}
	q.Forget("k")
	if n := q.NumRequeues("k"); n != 0 {
		t.Fatalf("NumRequeues(k) after Forget = %d, want 0", n)
	}
}

func TestQueueShutDown(t *testing.T) {
	q := newQueue(time.Millisecond, time.Second)
	q.Add("held")
	q.AddAfter("delayed", time.Hour)
	held, _ := q.Get()
	q.Add(held) // to be queued again on Done, but the queue shuts down first
	var wg sync.WaitGroup
	work(&wg, q, 3, func(string) {})
	q.ShutDown()
	ended := make(chan struct{})
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(time.Second):
		t.Fatal("workers blocked in Get after ShutDown")
	}
	q.Done(held)
	q.Add("after")
	q.AddAfter("after", time.Millisecond)
	q.AddRateLimited("after")
	time.Sleep(20 * time.Millisecond)
	if n := q.Len(); n != 0 {
		t.Fatalf("Len() after ShutDown = %d, want 0", n)
	}
	if k, ok := q.Get(); ok {
		t.Fatalf("Get() after ShutDown = %q, true, want false", k)
	}
}
