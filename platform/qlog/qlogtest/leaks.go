package qlogtest

import "go.uber.org/goleak"

// IgnoreNATSLeaks is the goleak option for the one goroutine nats.go
// (v1.55.0) can leave behind on its own: the first async publish of a
// JetStream context starts resetPendingAcksOnReconnect, which reads the
// status channel under the publisher's lock; when the context's reply
// subscription is cleaned up before that goroutine runs, it reads nil
// and waits on a nil channel forever. It is the library's race, not a
// replica left running, so packages that check for leaks ignore it.
func IgnoreNATSLeaks() goleak.Option {
	return goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect")
}
