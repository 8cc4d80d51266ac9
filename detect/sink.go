package detect

import "context"

// Sink receives events from the data path. Emit must never block the data
// path: implementations either do constant, non-blocking work or queue the
// event and drop (counting the drop) when the queue is full. Implementations
// must be safe for concurrent use.
type Sink interface {
	Emit(Event)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(Event)

// Emit calls f(e).
func (f SinkFunc) Emit(e Event) { f(e) }

// Discard is a Sink that drops every event.
var Discard Sink = SinkFunc(func(Event) {})

// BatchWriter writes a batch of events to a destination that may block or
// fail: a store, syslog, NATS. It returns only when the batch is durable at
// the destination (written, acknowledged) or an error. The events slice must
// not be retained after return. Implementations must be safe for use by one
// goroutine at a time at least; those safe for concurrent use say so.
//
// A BatchWriter is put behind an asynchronous Sink (see NewAsync) so the data
// path never waits for it.
type BatchWriter interface {
	WriteEvents(ctx context.Context, events []Event) error
}

// Fanout returns a Sink that emits every event to each of sinks in order.
// Nil sinks are skipped. With no sinks it returns Discard.
func Fanout(sinks ...Sink) Sink {
	var s []Sink
	for _, k := range sinks {
		if k != nil {
			s = append(s, k)
		}
	}
	switch len(s) {
	case 0:
		return Discard
	case 1:
		return s[0]
	}
	return fanout(s)
}

type fanout []Sink

func (f fanout) Emit(e Event) {
	for _, s := range f {
		s.Emit(e)
	}
}
