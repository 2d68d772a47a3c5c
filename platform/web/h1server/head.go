package h1server

import (
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
)

// The server takes a request only when its head is in the plainest form
// HTTP/1.1 allows, where there is one reading of it and net/http's is that
// one: a request line of a common method, an origin-form target and
// HTTP/1.1, separated by single spaces; header lines of a token, a colon
// and printable ASCII, each ended by CRLF; exactly one Host; at most one
// Content-Length of digits; no Transfer-Encoding, Expect or Upgrade, and
// a Connection of close or keep-alive only. Anything else (chunked bodies,
// HTTP/1.0, obs-folds, bare LFs, duplicated framing headers, a head over
// the read buffer) goes to net/http with its bytes unread, so whatever
// net/http accepts, refuses or answers for it, it still does. That keeps
// every request-smuggling question (RFC 9112 §6.3, §11.2) where it was:
// the requests taken have a single framing that both readings agree on.

// maxHeaderLines bounds the header lines of a taken request.
const maxHeaderLines = 100

// methods are the methods taken, as the strings the request carries, so
// that Request.Method costs no allocation.
var methods = [...]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete,
	http.MethodHead, http.MethodPatch, http.MethodOptions}

// startsLikeRequest reports whether b, the first bytes of a request, can
// be the start of a taken request line; false means the request goes to
// net/http at once, without waiting for the rest of its head.
func startsLikeRequest(b []byte) bool {
	for _, m := range methods {
		n := min(len(b), len(m))
		if string(b[:n]) == m[:n] && (len(b) == n || b[n] == ' ') {
			return true
		}
	}
	return false
}

// headEnd returns the length of the head at the start of b, its final
// empty line included; 0 while the head is incomplete, -1 when b cannot
// be the head of a taken request (a line ended by a bare LF, or a CR that
// ends no line). It scans from the line starting at from.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); i++ {
		switch b[i] {
		case '\r':
			if i+1 < len(b) && b[i+1] != '\n' {
				return -1
			}
		case '\n':
			if i == 0 || b[i-1] != '\r' {
				return -1
			}
			if i >= 3 && b[i-2] == '\n' {
				return i + 1
			}
		}
	}
	return 0
}

// lineStart returns where the last line of b begins: where a scan of a
// longer b resumes.
func lineStart(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	return 0
}

// parsed is a taken request's head.
type parsed struct {
	method, target string
	url            *url.URL
	header         http.Header
	host           string
	contentLength  int64
	close          bool
}

// parseHead parses head (the request line, the header lines, the empty
// line) and reports whether the server takes the request, and if not,
// why not. Every string of the result is a substring of head: one
// allocation holds them all.
func parseHead(head string) (p parsed, refused Reason, ok bool) {
	line, rest, _ := strings.Cut(head, "\r\n")
	method, line, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || proto != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return p, requestLineRefusal(ok1 && ok2, target, proto), false
	}
	for _, m := range methods {
		if method == m {
			p.method = m
		}
	}
	if p.method == "" {
		return p, ReasonMethod, false
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c <= ' ' || c >= 0x7f || c == '#' {
			return p, ReasonTarget, false
		}
	}
	lines := strings.Count(rest, "\r\n") - 1 // the empty line ends the head
	if lines > maxHeaderLines {
		return p, ReasonTooLarge, false
	}
	p.header = make(http.Header, lines)
	values := make([]string, lines)
	hosts, lengths, connections := 0, 0, 0
	// A Connection not taken is the reason only when there is no other:
	// a WebSocket handshake's Connection: Upgrade comes before its
	// Upgrade, and counts as an upgrade.
	badConnection := false
	for i := 0; i < lines; i++ {
		line, rest, _ = strings.Cut(rest, "\r\n")
		name, value, found := strings.Cut(line, ":")
		if !found || !validName(name) || !validValue(value) {
			return p, ReasonMalformed, false
		}
		value = strings.Trim(value, " \t")
		key := canonicalKey(name)
		switch key {
		case "Transfer-Encoding", "Te":
			return p, ReasonFraming, false
		case "Expect":
			return p, ReasonExpect, false
		case "Upgrade", "Http2-Settings":
			return p, ReasonUpgrade, false
		case "Host":
			if hosts++; hosts > 1 || !validHost(value) {
				return p, ReasonHost, false
			}
			p.host = value
		case "Content-Length":
			if lengths++; lengths > 1 || len(value) == 0 || len(value) > 18 || strings.Trim(value, "0123456789") != "" {
				return p, ReasonFraming, false
			}
			for j := 0; j < len(value); j++ {
				p.contentLength = p.contentLength*10 + int64(value[j]-'0')
			}
		case "Connection":
			connections++
			switch {
			case connections > 1:
				badConnection = true
			case strings.EqualFold(value, "close"):
				p.close = true
			case !strings.EqualFold(value, "keep-alive"):
				badConnection = true
			}
		}
		// Each value's slice has a capacity of one, so that a handler
		// appending to it copies instead of writing into the next.
		values[i] = value
		if prior, ok := p.header[key]; ok {
			p.header[key] = append(prior, value)
		} else {
			p.header[key] = values[i : i+1 : i+1]
		}
	}
	if hosts != 1 {
		return p, ReasonHost, false
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return p, ReasonTarget, false
	}
	if badConnection {
		return p, ReasonConnection, false
	}
	// As net/http: the host is the request's, not a header (Request.Host);
	// Pragma: no-cache without Cache-Control is Cache-Control: no-cache
	// (RFC 9111 §5.4).
	delete(p.header, "Host")
	if pragma, ok := p.header["Pragma"]; ok && len(pragma) > 0 && pragma[0] == "no-cache" {
		if _, ok := p.header["Cache-Control"]; !ok {
			p.header["Cache-Control"] = []string{"no-cache"}
		}
	}
	p.target, p.url = target, u
	return p, 0, true
}

// requestLineRefusal says why a request line that split into target and
// proto (or did not) is not taken; off the path of the requests taken.
func requestLineRefusal(split bool, target, proto string) Reason {
	switch {
	case !split || target == "" || strings.IndexByte(proto, ' ') >= 0:
		return ReasonMalformed // not three parts between single spaces
	case proto != "HTTP/1.1":
		return ReasonVersion
	}
	return ReasonTarget
}

// canonicalKey is textproto's canonical form of name, which is already
// a token: name itself, without an allocation, when it is canonical.
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return textproto.CanonicalMIMEHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// validName: a token (RFC 9110 §5.1).
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isToken[s[i]] {
			return false
		}
	}
	return true
}

// validValue: printable ASCII, spaces and tabs. Other bytes net/http
// accepts (obs-text) are left to it.
func validValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' || c >= 0x7f) && c != '\t' {
			return false
		}
	}
	return true
}

// validHost: a host name, an IPv4 or bracketed IPv6 address, and a port.
func validHost(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(".-_:[]", c) >= 0) {
			return false
		}
	}
	return true
}

// isToken marks the bytes of a token: tchar of RFC 9110 §5.6.2.
var isToken = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
