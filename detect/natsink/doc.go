// Package natsink publishes seccloud events to a NATS JetStream stream, one
// message per event whose payload is the event's Elastic Common Schema JSON,
// on the subject "<prefix>.<module>.<tenant>" (see [Subject]). Several
// appliances publish to one stream that a detect node or the SOC's SIEM
// consumes.
//
// A [Writer] is a [detect.BatchWriter]: WriteEvents returns only when the
// server acknowledged (stored) every event of the batch. Put it behind
// [detect.NewAsync], which retries failed batches with backoff, so the data
// path never waits for the server:
//
//	w, err := natsink.New(natsink.Config{
//		URL:          "nats://127.0.0.1:4222",
//		CreateStream: true,
//	})
//	if err != nil { ... }
//	defer w.Close()
//	sink, err := detect.NewAsync(detect.AsyncConfig{Writer: w, Logger: log})
//	if err != nil { ... }
//	defer sink.Close(ctx) // flushes
//	sink.Emit(ev)
//
// Messages carry a Nats-Msg-Id header (the event ID, or a hash of the
// JSON), so a batch retried after a partial failure is stored once.
package natsink
