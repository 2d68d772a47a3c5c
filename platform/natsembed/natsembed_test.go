package natsembed

import (
	"net"
	"strings"
	"testing"
	"time"
)

// A server whose port is taken must say so at once, not after the
// readiness deadline: tests start servers on ports chosen a moment
// before, and retry elsewhere when one was taken.
func TestStartOnATakenPortFailsAtOnce(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	began := time.Now()
	s, err := Start(Options{Name: "taken", Dir: t.TempDir(), Addr: held.Addr().String()})
	if err == nil {
		s.Shutdown()
		t.Fatalf("Start on held %s = nil error", held.Addr())
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("Start on held %s = %v, want the listener's error", held.Addr(), err)
	}
	if took := time.Since(began); took > readyWithin/2 {
		t.Errorf("Start on held %s took %s, want a prompt error", held.Addr(), took)
	}
}

func TestStartServesClients(t *testing.T) {
	s, err := Start(Options{Name: "ok", Dir: t.TempDir(), Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	c.Close()
}
