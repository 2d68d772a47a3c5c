package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit raises this process's RLIMIT_NOFILE soft limit to the
// hard limit (child processes inherit it), for the watch fan-out's
// thousands of connections. It returns the soft limit in force afterwards.
func raiseFileLimit() (soft uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit(RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return lim.Cur, fmt.Errorf("setrlimit(RLIMIT_NOFILE, %d): %w", lim.Max, err)
		}
		lim = want
	} else {
		// Setting it (to what it already is) also tells the Go runtime
		// not to restore the lower limit it started with for children.
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	return lim.Cur, nil
}
