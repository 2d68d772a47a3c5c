// Package console serves Steward's web console: a single-page app built
// from ui/ with Vite (make ui) into dist/, which is committed so that go
// build and go test need no npm, and embedded here. The gateway (and so
// steward dev) mounts Handler at /ui/. The files hold no data: every
// call the page makes goes to the public API with the reader's token.
package console

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/stewardhq/steward/platform/fault"
	"github.com/stewardhq/steward/platform/web"
)

//go:embed dist
var dist embed.FS

// Prefix is where Handler expects to be mounted; the build's base URL
// (ui/vite.config.ts) names the same.
const Prefix = "/ui/"

// policy lets the page load only its own files and talk only to its own
// origin: no inline script, no other host, no framing.
const policy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	body, gzipped []byte
	contentType   string
	cache         string
}

// Handler serves the console under Prefix: index.html at Prefix itself
// (never cached, so a new build is picked up at once), the hashed assets
// under Prefix+"assets/" cached for a year, each gzip-compressed once
// here for clients that accept it.
func Handler() http.Handler {
	files := map[string]*file{}
	// The files are compiled into the binary: failing to read them is a
	// broken build, not a condition to serve around.
	root, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		f := &file{body: body, contentType: mime.TypeByExtension(path.Ext(name)), cache: "no-cache"}
		if f.contentType == "" {
			f.contentType = "application/octet-stream"
		}
		if strings.HasPrefix(name, "assets/") {
			f.cache = "public, max-age=31536000, immutable"
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body) {
			f.gzipped = buf.Bytes()
		}
		files[name] = f
		return nil
	})
	if err != nil {
		panic(err)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == strings.TrimSuffix(Prefix, "/") {
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			web.Error(w, r, nil, fault.New(fault.NotAllowed, "%s: the console's files are read with GET or HEAD", r.Method))
			return
		}
		name := strings.TrimPrefix(r.URL.Path, Prefix)
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok || !strings.HasPrefix(r.URL.Path, Prefix) {
			web.Error(w, r, nil, fault.New(fault.NotFound, "the console has no file %s", r.URL.Path))
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.contentType)
		h.Set("Cache-Control", f.cache)
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Add("Vary", "Accept-Encoding")
		body := f.body
		if f.gzipped != nil && acceptsGzip(r) {
			h.Set("Content-Encoding", "gzip")
			body = f.gzipped
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}
