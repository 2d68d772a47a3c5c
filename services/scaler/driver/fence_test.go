package driver

import (
	"errors"
	"sync"
	"testing"
)

func TestFence(t *testing.T) {
	var f fence
	for _, tt := range []struct {
		token int64
		want  error
	}{
		{1, nil}, {1, nil}, {3, nil}, {2, ErrFenced}, {3, nil}, {0, ErrFenced}, {4, nil}, {3, ErrFenced},
	} {
		if err := f.admit(tt.token); !errors.Is(err, tt.want) {
			t.Errorf("admit(%d) = %v, want %v", tt.token, err, tt.want)
		}
	}
}

// Racing admits leave the mark at the highest token, and every refusal
// was of a token below it.
func TestFenceConcurrent(t *testing.T) {
	var f fence
	var wg sync.WaitGroup
	for i := range int64(64) {
		wg.Go(func() { _ = f.admit(i) })
	}
	wg.Wait()
	if got := f.newest.Load(); got != 63 {
		t.Errorf("newest = %d, want 63", got)
	}
}
