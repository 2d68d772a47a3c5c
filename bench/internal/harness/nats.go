package harness

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/stewardhq/steward/platform/natsembed"
)

// NATSServer is an embedded NATS server with JetStream file storage in its
// own directory.
type NATSServer struct {
	srv *server.Server
	URL string
}

func StartNATS(dir string, syncAlways bool) (*NATSServer, error) {
	srv, err := natsembed.Start(natsembed.Options{
		Name:       "bench",
		Dir:        filepath.Join(dir, "nats"),
		Addr:       "127.0.0.1:0",
		SyncAlways: syncAlways,
	})
	if err != nil {
		return nil, err
	}
	return &NATSServer{srv: srv, URL: srv.ClientURL()}, nil
}

func (s *NATSServer) Stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

func (s *NATSServer) Connect() (*nats.Conn, error) {
	nc, err := nats.Connect(s.URL, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.URL, err)
	}
	return nc, nil
}

// Filler returns n bytes of printable ASCII (valid inside a JSON string).
func Filler(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
