package freeport

import (
	"fmt"
	"net"
	"testing"
)

func TestRangeIsFreeAndBelowEphemeral(t *testing.T) {
	for range 20 {
		base := Range(t, 8)
		if base < lowest || base+8 > ephemeralStart() {
			t.Fatalf("Range(8) = %d, want within [%d, %d)", base, lowest, ephemeralStart()-8)
		}
		for p := base; p < base+8; p++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				t.Fatalf("port %d of Range(8) = %d: %v", p, base, err)
			}
			ln.Close()
		}
	}
}

func TestRangeSkipsHeldPorts(t *testing.T) {
	base := Range(t, 1)
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if free(base, 1) {
		t.Fatalf("free(%d) = true while it is held", base)
	}
}
