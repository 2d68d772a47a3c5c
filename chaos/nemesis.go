package main

import (
	"context"
	"io"
	"time"
)

// faultRecord is one fault the nemesis injected.
type faultRecord struct {
	Kind    string
	Target  string
	Start   time.Time
	Healed  time.Time
	End     time.Time // the end of its recovery window
}

var faultList = []string{}

func faultKinds() []string { return faultList }

func knownFault(f string) bool {
	for _, k := range faultList {
		if k == f {
			return true
		}
	}
	return false
}

func (s *suite) run(ctx context.Context, out io.Writer) error { return s.smoke(ctx) }
