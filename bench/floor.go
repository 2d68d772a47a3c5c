package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/natsembed"
)

// natsServer is an embedded NATS server with JetStream file storage in its
// own directory.
type natsServer struct {
	srv *server.Server
	url string
}

func startNATS(dir string, syncAlways bool) (*natsServer, error) {
	srv, err := natsembed.Start(natsembed.Options{
		Name:       "bench",
		Dir:        filepath.Join(dir, "nats"),
		Addr:       "127.0.0.1:0",
		SyncAlways: syncAlways,
	})
	if err != nil {
		return nil, err
	}
	return &natsServer{srv: srv, url: srv.ClientURL()}, nil
}

func (s *natsServer) stop() {
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

func (s *natsServer) connect() (*nats.Conn, error) {
	nc, err := nats.Connect(s.url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", s.url, err)
	}
	return nc, nil
}

const (
	rawStream  = "BENCH_RAW"
	rawSubject = "bench.raw"
)

// floor measures what JetStream itself does on the server qlog runs on:
// the lowest latency and highest throughput a log built on it could reach.
type floor struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	payload []byte
}

func openFloor(ctx context.Context, s *natsServer, valueSize, inFlight int) (*floor, error) {
	nc, err := s.connect()
	if err != nil {
		return nil, err
	}
	return newFloor(ctx, nc, 1, valueSize, inFlight)
}

// newFloor creates the raw stream with the given replicas on nc's server
// (or cluster); the floor owns nc from here, even on error.
func newFloor(ctx context.Context, nc *nats.Conn, replicas, valueSize, inFlight int) (*floor, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(inFlight),
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		nc.Close()
		return nil, err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:     rawStream,
		Subjects: []string{rawSubject},
		Storage:  jetstream.FileStorage,
		Replicas: replicas,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("create stream %s: %w", rawStream, err)
	}
	return &floor{nc: nc, js: js, payload: filler(valueSize)}, nil
}

func (f *floor) close() { f.nc.Close() }

// syncPublish publishes and waits for the stream's acknowledgement.
func (f *floor) syncPublish(ctx context.Context, _ int64) error {
	_, err := f.js.Publish(ctx, rawSubject, f.payload)
	return err
}

// echo is an ordered consumer on the raw stream, read the way qlog's apply
// loop reads its log, for the publish-and-receive floor: a proposal is
// applied only once the message came back through such a consumer.
type echo struct {
	it        jetstream.MessagesContext
	delivered chan uint64 // stream sequences, in order
	done      chan struct{}
}

func (f *floor) startEcho(ctx context.Context) (*echo, error) {
	st, err := f.js.Stream(ctx, rawStream)
	if err != nil {
		return nil, err
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		return nil, err
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return nil, err
	}
	e := &echo{it: it, delivered: make(chan uint64, 1024), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			msg, err := it.Next()
			if err != nil {
				return
			}
			if meta, err := msg.Metadata(); err == nil {
				e.delivered <- meta.Sequence.Stream
			}
		}
	}()
	return e, nil
}

func (e *echo) stop() {
	e.it.Stop()
	for {
		select {
		case <-e.done:
			return
		case <-e.delivered:
		}
	}
}

// publishAndReceive publishes, waits for the acknowledgement, and then for
// the consumer to deliver that message. One caller at a time.
func (f *floor) publishAndReceive(e *echo) op {
	return func(ctx context.Context, _ int64) error {
		ack, err := f.js.Publish(ctx, rawSubject, f.payload)
		if err != nil {
			return err
		}
		for {
			select {
			case seq := <-e.delivered:
				if seq >= ack.Sequence {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("message %d was not delivered: %w", ack.Sequence, ctx.Err())
			}
		}
	}
}

// asyncPublish measures one publisher that keeps inFlight publishes
// outstanding (js.PublishAsync); a message's latency runs from the moment
// it is handed to PublishAsync until its acknowledgement arrives.
func (f *floor) asyncPublish(ctx context.Context, s settings, inFlight int) result {
	run := func(d time.Duration) runStats {
		type sent struct {
			at  time.Time
			ack jetstream.PubAckFuture
		}
		slots := make(chan struct{}, inFlight)
		queue := make(chan sent, inFlight)
		var (
			lat      []time.Duration
			errs     atomic.Int64
			errMu    sync.Mutex
			firstErr error
		)
		noteErr := func(err error) {
			errs.Add(1)
			errMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			errMu.Unlock()
		}
		// JetStream acknowledges one stream's messages in order, so
		// collecting the futures in publish order measures each ack when
		// it arrives.
		collected := make(chan struct{})
		go func() {
			defer close(collected)
			for m := range queue {
				select {
				case <-m.ack.Ok():
					lat = append(lat, time.Since(m.at))
				case err := <-m.ack.Err():
					noteErr(err)
				}
				<-slots
			}
		}()
		start := time.Now()
		deadline := start.Add(d)
		for ctx.Err() == nil && time.Now().Before(deadline) {
			slots <- struct{}{}
			at := time.Now()
			ack, err := f.js.PublishAsync(rawSubject, f.payload, jetstream.WithStallWait(30*time.Second))
			if err != nil {
				<-slots
				noteErr(err)
				continue
			}
			queue <- sent{at, ack}
		}
		close(queue)
		<-collected
		return newRunStats(lat, int(errs.Load()), firstErr, time.Since(start))
	}
	if s.warmup > 0 {
		run(s.warmup)
	}
	var r result
	for range s.runs {
		r.runs = append(r.runs, run(s.duration))
	}
	return r
}

// filler returns n bytes of printable ASCII (valid inside a JSON string).
func filler(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
