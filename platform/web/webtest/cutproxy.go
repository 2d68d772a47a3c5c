package webtest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// CutProxy is a TCP proxy in front of a server whose connections a test
// can cut, as a network fault or a dying load balancer would, to see
// that a client resumes what it was doing.
type CutProxy struct {
	// URL is the base URL to call instead of the server's.
	URL string

	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

// NewCutProxy proxies to the server at base (http://host:port) until the
// test ends.
func NewCutProxy(t testing.TB, base string) *CutProxy {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &CutProxy{URL: u.Scheme + "://" + ln.Addr().String(), ln: ln, target: u.Host}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
	})
	return p
}

func (p *CutProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		go pipe(c, s)
		go pipe(s, c)
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// Cut closes every connection open through the proxy; new ones are
// accepted as before.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
