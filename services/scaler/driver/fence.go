package driver

import "sync/atomic"

// fence is a fencing token's high-water mark. Equal tokens pass: a
// leader makes many calls under one term.
type fence struct{ newest atomic.Int64 }

// admit raises the mark to token, or returns ErrFenced if a newer token
// has been seen. Callers serialise their actuations and admit inside
// that section, so a newer leader's call cannot interleave with an
// admitted older one.
func (f *fence) admit(token int64) error {
	for {
		cur := f.newest.Load()
		if token < cur {
			return ErrFenced
		}
		if token == cur || f.newest.CompareAndSwap(cur, token) {
			return nil
		}
	}
}
