package h1client

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/textproto"
)

// readCommonHead reads an answer's head of the common shape without
// net/http.ReadResponse: HTTP/1.1, a final status other than 204 and 304,
// to a request other than HEAD, framed by one Content-Length, its whole
// head already buffered, every header name letters, digits and dashes and
// every value printable ASCII, and no header that changes how net/http
// reads the rest (Transfer-Encoding, Connection, Trailer, Pragma). It
// yields what ReadResponse yields for such an answer, with one string for
// the whole head and one slice of values instead of one each; the
// differential fuzz target (FuzzAnswer) holds it to net/http. Any other
// answer it declines, nil, and has consumed nothing: ReadResponse reads it.
func readCommonHead(br *bufio.Reader, req *http.Request) *http.Response {
	if req.Method == http.MethodHead {
		return nil
	}
	buffered, _ := br.Peek(br.Buffered())
	end := bytes.Index(buffered, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	raw := buffered[:end+2] // every line with its CRLF
	line, rest, _ := bytes.Cut(raw, []byte("\r\n"))
	// "HTTP/1.1 200" and, optionally, " " and a reason.
	if len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return nil
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	for _, c := range line[12:] {
		if !printable(c) {
			return nil
		}
	}

	lines := bytes.Count(rest, []byte("\r\n"))
	head := string(raw) // the one string the answer's strings are cut from
	values := make([]string, lines)
	h := make(http.Header, lines)
	length := int64(-1)
	at := len(line) + 2
	for i := range lines {
		n := bytes.IndexByte(rest, '\n')
		if n < 1 || rest[n-1] != '\r' {
			return nil // a line ended by a bare LF
		}
		kv := rest[:n-1]
		rest = rest[n+1:]
		colon := bytes.IndexByte(kv, ':')
		if colon <= 0 {
			return nil
		}
		for _, c := range kv[:colon] {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return nil
			}
		}
		v := kv[colon+1:]
		for _, c := range v {
			if !printable(c) && c != '\t' {
				return nil
			}
		}
		lead, trail := 0, len(v)
		for lead < trail && (v[lead] == ' ' || v[lead] == '\t') {
			lead++
		}
		for trail > lead && (v[trail-1] == ' ' || v[trail-1] == '\t') {
			trail--
		}
		key := textproto.CanonicalMIMEHeaderKey(head[at : at+colon])
		value := head[at+colon+1+lead : at+colon+1+trail]
		at += n + 1
		switch key {
		case "Transfer-Encoding", "Connection", "Trailer", "Pragma":
			return nil
		case "Content-Length":
			if length >= 0 || len(value) == 0 || len(value) > 18 {
				return nil // a second one, or one net/http may refuse
			}
			length = 0
			for j := 0; j < len(value); j++ {
				c := value[j]
				if c < '0' || c > '9' {
					return nil
				}
				length = length*10 + int64(c-'0')
			}
		}
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
		} else {
			values[i] = value
			h[key] = values[i : i+1 : i+1]
		}
	}
	if length < 0 {
		return nil // delimited by the connection's end
	}
	_, _ = br.Discard(end + 4)
	resp := &http.Response{Status: head[9:len(line)], StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, ContentLength: length, Request: req, Body: http.NoBody}
	if length > 0 {
		resp.Body = &lengthBody{r: br, n: length}
	}
	return resp
}

// printable is a byte of VCHAR or SP.
func printable(c byte) bool { return ' ' <= c && c <= '~' }

// lengthBody reads a body of n bytes as net/http's does: the last bytes
// come with io.EOF, and an end before them is io.ErrUnexpectedEOF.
type lengthBody struct {
	r io.Reader
	n int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF && b.n > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && b.n == 0:
		err = io.EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
