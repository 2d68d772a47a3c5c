// Package freeport finds TCP ports for tests that must name a port before
// the server that will listen on it starts: a NATS cluster's routes, a
// child process given PORT, a restart on the same address.
//
// A port the kernel hands out for ":0" lies in the ephemeral range, the
// same range the kernel draws from for the local end of every outgoing
// connection. Between the check and the real bind, any client on the
// machine (a test's own connections to NATS, a parallel test package)
// can take it, and the server then never listens. The ports here come
// from below the ephemeral range, where only another listener that picks
// the same random port can collide.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

const lowest = 10000

// Port returns a TCP port on 127.0.0.1 that was free a moment ago and lies
// outside the kernel's ephemeral range.
func Port(t testing.TB) int {
	t.Helper()
	return Range(t, 1)
}

// Range returns the first of n consecutive ports on 127.0.0.1 that were
// free a moment ago, from a random start below the ephemeral range.
func Range(t testing.TB, n int) int {
	t.Helper()
	base, err := find(n)
	if err != nil {
		t.Fatal(err)
	}
	return base
}

func find(n int) (int, error) {
	top := ephemeralStart() - n
	if top <= lowest+n {
		top = 40000 // an unusual ephemeral range: take the chance
	}
	for range 50 {
		base := lowest + rand.IntN(top-lowest)
		if free(base, n) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d free consecutive ports between %d and %d", n, lowest, top+n)
}

func free(base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// ephemeralStart is the lowest port the kernel gives outgoing connections.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil || lo <= 0 {
		return 32768
	}
	return lo
}
