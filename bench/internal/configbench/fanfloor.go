package configbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/stewardhq/steward/bench/internal/harness"
	"github.com/stewardhq/steward/services/config/kv"
)

// The fan-out floor is what the watch fan-out costs this machine without
// Steward: a child process holding the watchers' connections that, when
// PUT to, writes the event a replica would (the same bytes: id, type, the
// entry and the one before it) to every one of them from
// GOMAXPROCS goroutines, each going down its share of the connections
// (no goroutine per watcher to wake, no log, no fsync). The watchers and
// the PUTs are the fan-out's own code, so the two differ only in the
// server. What the floor's per-PUT p99 leaves of the 100 ms goal is what
// any server on this machine has, with its watchers on the same two CPUs.

// FloorChildCommand is the subcommand under which bench re-executes itself
// to run the fan-out floor's server.
const FloorChildCommand = "fanfloorchild"

// floorWatchHead is the head of a watch answer, as platform/sse writes it
// on a connection taken over: no length, no chunks, closed to end.
const floorWatchHead = "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nConnection: close\r\n" +
	"Content-Type: text/event-stream\r\nX-Accel-Buffering: no\r\n\r\n: watching\n\n"

// RunFloorChild is the floor's child process: it serves on 127.0.0.1:0,
// says where as a service child does, and answers stats until stdin closes.
func RunFloorChild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(FloorChildCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	valueSize := fs.Int("value-size", 256, "size of the JSON value each event carries")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	stopProfile, err := harness.StartCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	f := &floorServer{value: harness.JSONValue(*valueSize)}
	go f.accept(ln)
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(map[string]string{"addr": ln.Addr().String()}); err != nil {
		return err
	}
	return harness.AnswerStats(os.Stdin, enc)
}

// floorServer answers a GET of /v1/watch with a stream and keeps its
// connection; a PUT writes an event to every kept connection.
type floorServer struct {
	value []byte
	mu    sync.Mutex
	conns []net.Conn
	rev   int64
}

func (f *floorServer) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go f.serve(c)
	}
}

// serve reads requests on c until it closes or turns into a stream.
func (f *floorServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		method, target, length, err := readRequestHead(br)
		if err != nil {
			return
		}
		if _, err := br.Discard(length); err != nil {
			return
		}
		switch {
		case method == "GET" && strings.HasPrefix(target, "/v1/watch"):
			if _, err := io.WriteString(c, floorWatchHead); err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			// A watcher sends nothing more: wait for it to leave.
			_, _ = io.Copy(io.Discard, br)
			return
		case method == "PUT":
			rev := f.fanOut()
			body := `{"revision":` + strconv.FormatInt(rev, 10) + "}"
			if _, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Steward-Revision: %d\r\nContent-Length: %d\r\n\r\n%s",
				rev, len(body), body); err != nil {
				return
			}
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
		}
	}
}

// floorEventData is the data of the event a config replica sends its
// watchers for the PUT of value at rev, the key's rev-th version: the
// entry and the one before it (kv.EventData), so that the floor writes
// as many bytes a watcher as the replica does.
func floorEventData(rev int64, value []byte) []byte {
	e := kv.EventData{Entry: kv.Entry{Key: fanKey, Value: value, CreateRevision: 1, ModRevision: rev, Version: rev}}
	if rev > 1 {
		e.PrevEntry = &kv.Entry{Key: fanKey, Value: value, CreateRevision: 1, ModRevision: rev - 1, Version: rev - 1}
	}
	b, err := json.Marshal(e)
	if err != nil {
		panic(err) // a fixed shape: cannot fail
	}
	return b
}

// fanOut takes the next revision and writes its event to every stream,
// GOMAXPROCS goroutines each writing to every GOMAXPROCS-th connection; it
// returns the revision without waiting for the writes.
func (f *floorServer) fanOut() int64 {
	f.mu.Lock()
	f.rev++
	rev, conns := f.rev, f.conns
	f.mu.Unlock()
	ev := fmt.Appendf(nil, "id: %d\nevent: put\ndata: %s\n\n", rev, floorEventData(rev, f.value))
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		go func() {
			for i := w; i < len(conns); i += workers {
				_, _ = conns[i].Write(ev) // a watcher that left fails alone
			}
		}()
	}
	return rev
}

// readRequestHead reads an HTTP/1.1 request's head and returns its method,
// target and Content-Length (0 when absent).
func readRequestHead(br *bufio.Reader) (method, target string, length int, err error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", "", 0, err
	}
	parts := strings.Fields(line)
	if len(parts) != 3 {
		return "", "", 0, fmt.Errorf("request line %q", line)
	}
	method, target = parts[0], parts[1]
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return method, target, length, nil
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return "", "", 0, fmt.Errorf("header line %q", line)
		}
		if strings.EqualFold(name, "Content-Length") {
			if length, err = strconv.Atoi(strings.TrimSpace(value)); err != nil || length < 0 {
				return "", "", 0, errors.Join(fmt.Errorf("content length %q", value), err)
			}
		}
	}
}

// startFloorChild starts the floor's server in a child process, writing its
// CPU profile to cpuProfile if set.
func startFloorChild(ctx context.Context, valueSize int, cpuProfile string) (*harness.ServiceChild, error) {
	return harness.StartChild(ctx, FloorChildCommand, "-value-size", strconv.Itoa(valueSize), "-cpuprofile", cpuProfile)
}
