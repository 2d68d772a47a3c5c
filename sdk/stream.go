package sdk

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"strconv"
	"time"

	"github.com/stewardhq/steward/sdk/api"
)

// Event is one server-sent event of a watch: its type (put, delete,
// leader, instances, ...), its data (a JSON document whose schema the
// type names in the API document) and its id, when it has one (the
// revision or index a watch resumes after).
type Event struct {
	ID   string
	Type string
	Data json.RawMessage
}

// maxEvent bounds one event (a service's whole instance set is one).
const maxEvent = 64 << 20

// opener opens one connection of a stream, resuming after lastID when
// it is not empty.
type opener func(ctx context.Context, lastID string) (*http.Response, error)

// streamEditors are the headers of a stream's request: it takes event
// streams, and resumes after lastID.
func streamEditors(lastID string) api.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		return nil
	}
}

// stream yields the events of the streams open opens, with EventSource's
// semantics: when a stream ends or breaks (the replica stopped, the
// network failed, the server said the watcher fell behind or shuts
// down) it opens the next after the retry delay, on this endpoint or the
// next, with Last-Event-ID, and events it already yielded are not
// yielded again. An answer 4xx ends it with an Error (a bad request, a
// token without the access, a revision compacted away: 410); so does
// ctx. It ends when the caller stops ranging.
func (c *Client) stream(ctx context.Context, open opener) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		var (
			lastID string
			// since are the events yielded after lastID: a stream resumed
			// after lastID sends them again, and so does one that starts
			// from a fixed point when there is no lastID yet. One that
			// starts from now (a watch of the current state) sends other
			// events instead, so they are skipped only as long as the new
			// stream repeats them.
			since []Event
			// base is the server's retry: delay, or firstRetry; a stream
			// that broke before giving an event doubles the wait, up to
			// maxRetry, so a replica that keeps failing is not hammered.
			base, delay = firstRetry, firstRetry
		)
		for {
			res, err := open(ctx, lastID)
			if ctx.Err() != nil {
				if err == nil {
					res.Body.Close()
				}
				yield(Event{}, ctx.Err())
				return
			}
			if err == nil && res.StatusCode >= 400 && res.StatusCode < 500 {
				yield(Event{}, problem(res))
				return
			}
			if err == nil && res.StatusCode < 300 {
				replay, gave := since, false
				verdict := readEvents(res, func(ev Event, retry time.Duration) verdict {
					if retry > 0 {
						base, delay = retry, retry
					}
					if ev.Type == "" && ev.ID == "" && ev.Data == nil {
						return keepReading // a retry: line alone
					}
					if ev.Type == "error" || ev.Type == "shutdown" {
						// The watcher fell behind, or the replica stops:
						// resume, here or on the next one.
						return reconnect
					}
					if len(replay) > 0 && sameEvent(replay[0], ev) {
						replay = replay[1:]
					} else if ev.Type != "" {
						replay = nil
						if !yield(ev, nil) {
							return stopRanging
						}
						gave = true
						if len(since) < maxReplay {
							since = append(since, ev)
						}
					}
					if ev.ID != "" {
						lastID, since = ev.ID, nil
					}
					return keepReading
				})
				if verdict == stopRanging {
					return
				}
				if gave {
					delay = base
				}
			} else if err == nil {
				res.Body.Close()
			}
			c.set.Failed(c.set.URL())
			select {
			case <-ctx.Done():
				yield(Event{}, ctx.Err())
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, max(base, maxRetry))
		}
	}
}

// A stream is reopened firstRetry after it broke, unless the server set
// its retry: delay, and up to maxRetry after one failure after another.
// A stream whose events carry no id never repeats them by Last-Event-ID;
// at most maxReplay events since the last id are kept to recognise a
// repeat.
const (
	firstRetry = 100 * time.Millisecond
	maxRetry   = 5 * time.Second
	maxReplay  = 1024
)

// sameEvent reports whether a and b are the same event: a resumed
// stream sending one again.
func sameEvent(a, b Event) bool {
	return a.ID == b.ID && a.Type == b.Type && bytes.Equal(a.Data, b.Data)
}

// verdict is what a stream's reader does after an event.
type verdict int

const (
	keepReading verdict = iota
	reconnect           // leave this stream, open the next
	stopRanging         // the caller stopped ranging
)

// readEvents calls fn with each event of res's text/event-stream (and
// the retry delay it set, if it did) until the stream ends or fn says
// otherwise, and closes res's body.
func readEvents(res *http.Response, fn func(Event, time.Duration) verdict) verdict {
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEvent)
	var (
		ev    Event
		data  bytes.Buffer
		retry time.Duration
		has   bool
	)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			if has || retry > 0 {
				if data.Len() > 0 {
					ev.Data = bytes.Clone(data.Bytes())
				}
				if ev.Type == "" && ev.Data != nil {
					ev.Type = "message" // as EventSource names an event without one
				}
				if v := fn(ev, retry); v != keepReading {
					return v
				}
			}
			ev, has, retry = Event{}, false, 0
			data.Reset()
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "": // a comment
		case "event":
			ev.Type, has = string(value), true
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.Write(value)
			has = true
		case "id":
			ev.ID, has = string(value), true
		case "retry":
			if ms, err := strconv.Atoi(string(value)); err == nil && ms >= 0 {
				retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return reconnect
}
