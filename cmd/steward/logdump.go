package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/stewardhq/steward/platform/envconf"
	"github.com/stewardhq/steward/platform/qlog"
	"github.com/stewardhq/steward/platform/qlog/qlogsvc"
)

// logSettings are `steward log`'s environment: the NATS a replica of the
// service connects to, and how.
type logSettings struct {
	NATSURL string `envconfig:"NATS_URL" default:"nats://127.0.0.1:4222" desc:"NATS server(s) with JetStream, comma-separated"`
	qlogsvc.NATSAuth
}

// logConnectTimeout bounds finding the stream: a NATS that does not answer
// is an error, not a wait.
const logConnectTimeout = 10 * time.Second

// runLog is `steward log dump <service> [--from seq] [--follow]`: every
// entry in the service's log stream from a stream sequence on, one JSON
// line each, decoded from either batch encoding (platform/qlog's binary
// frame or the JSON batches before it), so an operator can read what was
// proposed.
func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("steward log dump", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: steward log dump <service> [--from seq] [--follow]\n\n"+
			"Print each entry of the service's log stream (config, registry, election, scaler, auth)\n"+
			"as a JSON line: seq, msg_time, id, proposer, time, key, cmd. A message that does not\n"+
			"decode is a line with its bytes and the error.\n\n")
		fs.PrintDefaults()
	}
	from := fs.Uint64("from", 1, "stream sequence to start at")
	follow := fs.Bool("follow", false, "after the end, wait for new messages until interrupted")
	if len(args) == 0 || args[0] != "dump" {
		fs.Usage()
		return errUsage
	}
	// Flags may come before or after the service.
	if err := fs.Parse(args[1:]); err != nil {
		return errUsage
	}
	service := fs.Arg(0)
	if err := fs.Parse(fs.Args()[min(1, fs.NArg()):]); err != nil {
		return errUsage
	}
	if service == "" || fs.NArg() > 0 || *from == 0 {
		fs.Usage()
		return errUsage
	}

	var s logSettings
	if err := envconf.Load(&s); err != nil {
		return err
	}
	nc, err := qlogsvc.Connect(s.NATSURL, "steward-log-dump", s.NATSAuth)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	err = dumpLog(ctx, js, service, *from, *follow, stdout)
	if err != nil && !nc.IsConnected() {
		return fmt.Errorf("%w (NATS at %s is not reachable)", err, s.NATSURL)
	}
	return err
}

// dumpLog writes the entries of service's stream from sequence from to
// w: up to the last message the stream held when it began, or on until
// ctx ends with follow.
func dumpLog(ctx context.Context, js jetstream.JetStream, service string, from uint64, follow bool, w io.Writer) error {
	name := qlog.StreamName(service)
	sctx, cancel := context.WithTimeout(ctx, logConnectTimeout)
	stream, err := js.Stream(sctx, name)
	cancel()
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no log stream %s: is %q a service with a log?", name, service)
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", name, err)
	}
	state := stream.CachedInfo().State
	last := state.LastSeq
	if !follow && (from > last || state.Msgs == 0) {
		return nil // nothing to read: a consumer would wait for the next message
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: what was read is printed
			}
			return fmt.Errorf("read %s: %w", name, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		for _, line := range dumpLines(meta.Sequence.Stream, meta.Timestamp, msg.Data()) {
			if err := enc.Encode(line); err != nil {
				return err
			}
		}
		if !follow && meta.Sequence.Stream >= last {
			return nil
		}
	}
}

// dumpEntry is one line of `steward log dump`: an entry, or (with Error
// set and no entry fields) what was wrong with a message.
type dumpEntry struct {
	Seq      uint64    `json:"seq"`      // stream sequence of the message
	MsgTime  time.Time `json:"msg_time"` // when JetStream stored it
	ID       string    `json:"id,omitempty"`
	Proposer string    `json:"proposer,omitempty"`
	Time     time.Time `json:"time,omitzero"` // the proposer's clock
	Key      *string   `json:"key,omitempty"` // idempotency key, "" without one
	// Cmd is the command when it is JSON (as Propose requires);
	// CmdBytes holds one that is not, base64-encoded.
	Cmd      json.RawMessage `json:"cmd,omitempty"`
	CmdBytes []byte          `json:"cmd_bytes,omitempty"`

	Bytes int    `json:"bytes,omitempty"` // the message's length, with Error
	Error string `json:"error,omitempty"`
	// Skipped says the log applies nothing of the message (it decodes as
	// neither a binary frame nor a JSON batch); false with Error for a
	// JSON batch with a field of the wrong type, whose entries above
	// were applied.
	Skipped bool `json:"skipped,omitempty"`
}

// dumpLines are the lines of one stream message.
func dumpLines(seq uint64, stored time.Time, data []byte) []dumpEntry {
	entries, err := qlog.DecodeMessage(data)
	stored = stored.UTC()
	out := make([]dumpEntry, 0, len(entries)+1)
	for _, e := range entries {
		line := dumpEntry{Seq: seq, MsgTime: stored, ID: e.ID, Proposer: e.Proposer, Time: e.Time.UTC(), Key: &e.Key}
		if json.Valid(e.Cmd) {
			line.Cmd = e.Cmd
		} else {
			line.CmdBytes = e.Cmd
		}
		out = append(out, line)
	}
	if err != nil {
		out = append(out, dumpEntry{Seq: seq, MsgTime: stored, Bytes: len(data), Skipped: len(entries) == 0, Error: err.Error()})
	}
	return out
}
