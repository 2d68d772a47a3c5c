package h1client

import (
	"bufio"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestCommonHeadIsReadResponse reads answers of the common shape through
// readCommonHead, which must take them, and through http.ReadResponse,
// which must agree; and answers of any other shape, which readCommonHead
// must decline without consuming a byte. FuzzAnswer holds the whole
// transport to net/http's on arbitrary answers.
func TestCommonHeadIsReadResponse(t *testing.T) {
	taken := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
		"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 404 Not Found \r\ncontent-length: 007\r\nX-Empty:\r\nX-Pad: \t spaced out \t\r\n\r\nmissing",
		"HTTP/1.1 201 Created\r\nSet-Cookie: a=1\r\nContent-Length: 2\r\nSet-Cookie: b=2\r\nLocation: /x\r\n\r\nok",
		"HTTP/1.1 999 Odd\r\nContent-Length: 1\r\n\r\nx",
	}
	for _, raw := range taken {
		br := bufio.NewReader(strings.NewReader(raw))
		_, _ = br.Peek(1)
		fast := readCommonHead(br, &http.Request{Method: http.MethodGet})
		if fast == nil {
			t.Errorf("declined %q", raw)
			continue
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), fast.Request)
		if err != nil {
			t.Fatalf("ReadResponse(%q): %v", raw, err)
		}
		// One read of the whole body: net/http gives its last bytes with
		// io.EOF (which lets a transport reuse the connection at once).
		gotBody, wantBody := make([]byte, 64), make([]byte, 64)
		gotN, gotErr := fast.Body.Read(gotBody)
		wantN, wantErr := want.Body.Read(wantBody)
		gotBody, wantBody = gotBody[:gotN], wantBody[:wantN]
		fast.Body, want.Body = nil, nil
		if !reflect.DeepEqual(fast, want) || string(gotBody) != string(wantBody) || gotErr != wantErr {
			t.Errorf("%q:\nread %+v, body %q, %v\nReadResponse %+v, body %q, %v", raw, fast, gotBody, gotErr, want, wantBody, wantErr)
		}
	}

	declined := []struct{ method, raw string }{
		{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"},
		{"GET", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"},
		{"GET", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"},
		{"GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nPragma: no-cache\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTrailer: X-Sum\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\nX-A: b\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nX_Under: 1\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nX-Bin: caf\xc3\xa9\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1  200 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 20x OK\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 2000 OK\r\nContent-Length: 5\r\n\r\nhello"},
		{"GET", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"},
	}
	for _, d := range declined {
		br := bufio.NewReader(strings.NewReader(d.raw))
		_, _ = br.Peek(1)
		if resp := readCommonHead(br, &http.Request{Method: d.method}); resp != nil {
			t.Errorf("%s %q: taken, want declined", d.method, d.raw)
		}
		if rest, _ := io.ReadAll(br); string(rest) != d.raw {
			t.Errorf("%s %q: consumed %d bytes in declining", d.method, d.raw, len(d.raw)-len(rest))
		}
	}
}

// TestLengthBodyCutShort: an answer that ends before its Content-Length is
// an unexpected EOF, as net/http reads it.
func TestLengthBodyCutShort(t *testing.T) {
	raw := "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
	br := bufio.NewReader(strings.NewReader(raw))
	_, _ = br.Peek(1)
	resp := readCommonHead(br, &http.Request{Method: http.MethodGet})
	if resp == nil {
		t.Fatal("declined")
	}
	if b, err := io.ReadAll(resp.Body); string(b) != "short" || err != io.ErrUnexpectedEOF {
		t.Fatalf("read %q, %v; want \"short\", io.ErrUnexpectedEOF", b, err)
	}
}
