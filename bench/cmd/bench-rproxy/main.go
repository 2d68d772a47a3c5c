// Command bench-rproxy is the gateway section's same-language floor: a
// plain httputil.ReverseProxy whose Rewrite only sets the upstream URL and
// X-Forwarded-*, with nothing else on the request path. With no flags it
// is ReverseProxy's defaults: http.DefaultTransport (2 idle connections
// per host) and a new 32 KiB copy buffer per response. -idle-per-host and
// -pool-buffers tune those two, as a Go proxy in production would (the
// gateway does both): what is left is the floor the gateway builds on.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	_ "net/http/pprof"
	"net/url"
	"os"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	upstream := flag.String("upstream", "", "base URL of the upstream")
	idle := flag.Int("idle-per-host", 0, "MaxIdleConnsPerHost; 0 keeps http.DefaultTransport")
	pool := flag.Bool("pool-buffers", false, "lend ReverseProxy its copy buffers from a sync.Pool")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address too")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		fmt.Fprintln(os.Stderr, "bench-rproxy: -upstream must be a URL")
		os.Exit(2)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	if *idle > 0 {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns, t.MaxIdleConnsPerHost = 4**idle, *idle
		rp.Transport = t
	}
	if *pool {
		rp.BufferPool = &bufferPool{}
	}
	if *pprofAddr != "" {
		go func() { _ = http.ListenAndServe(*pprofAddr, nil) }() // DefaultServeMux has pprof
	}
	srv := &http.Server{Addr: *addr, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-rproxy:", err)
		os.Exit(1)
	}
}

type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }
