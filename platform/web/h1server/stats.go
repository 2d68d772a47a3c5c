package h1server

import (
	"strconv"
	"sync/atomic"
)

// Stats counts what a Server did, for metrics: atomics a request adds to
// without a lock or an allocation, read at scrape time.
type Stats struct {
	Requests    atomic.Uint64 // requests the server served itself
	Connections atomic.Uint64 // connections it was given (Serve's accepted ones, ServeConn's)
	// Handoffs are the connections handed to Fallback, by Reason: each
	// at the first request the server did not take, so a connection
	// counts once, and its requests from there on are net/http's.
	Handoffs [NumReasons]atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() *Stats { return &s.stats }

// A Reason is why the server did not take a request, and so handed its
// connection to Fallback: the first thing in the request's head, as the
// server reads it, that is not in the plainest form (see parseHead). The
// set is fixed and small, so that a metric may carry it as a label.
type Reason uint8

const (
	// ReasonMethod: the request does not start with one of the methods
	// taken and a space: CONNECT, TRACE, PRI (HTTP/2's preface, an h2c
	// client with prior knowledge), a lower-case method, or bytes that
	// are no HTTP at all (a TLS handshake on a plain port).
	ReasonMethod Reason = iota
	// ReasonTarget: a target not in origin-form (absolute-form, "*",
	// authority-form), with bytes other than printable ASCII or with a
	// '#', or that is no request URI net/url parses.
	ReasonTarget
	// ReasonVersion: a version other than HTTP/1.1 (HTTP/1.0, say).
	ReasonVersion
	// ReasonHost: no Host, two, or one that is not a plain host and port.
	ReasonHost
	// ReasonFraming: Transfer-Encoding (chunked bodies) or TE, or a
	// Content-Length repeated, empty, or not 18 digits at most.
	ReasonFraming
	// ReasonExpect: an Expect header (100-continue).
	ReasonExpect
	// ReasonUpgrade: an Upgrade (WebSocket, h2c) or HTTP2-Settings header.
	ReasonUpgrade
	// ReasonConnection: Connection twice, or naming something other than
	// close or keep-alive, and no other reason in the head (a WebSocket
	// handshake's Connection: Upgrade counts as an upgrade).
	ReasonConnection
	// ReasonTooLarge: a head over the 4 KiB read buffer, or with over 100
	// header lines.
	ReasonTooLarge
	// ReasonMalformed: a request line that is not three parts separated
	// by single spaces, a line ended by a bare LF or a CR that ends no
	// line, or a header line that is not a token, a colon and printable
	// ASCII (an obs-fold, a UTF-8 value).
	ReasonMalformed
	// ReasonIncomplete: the connection ended or failed before the end of
	// the head (net/http answers the part that came).
	ReasonIncomplete

	// NumReasons is the number of Reasons.
	NumReasons = iota
)

// reasonNames are the Reasons' label values.
var reasonNames = [NumReasons]string{"method", "target", "version", "host", "framing", "expect", "upgrade",
	"connection", "too_large", "malformed", "incomplete"}

// String returns r as a metric's label value: "method", "too_large".
func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}
