// Package syslog forwards seccloud events to a syslog receiver (a SIEM,
// rsyslog, syslog-ng) as RFC 5424 messages over TCP (RFC 6587) or TLS
// (RFC 5425) with octet-counting framing. Each event is one message whose
// MSG is the event's Elastic Common Schema JSON, so the receiver can index
// it as it is; PRI carries a severity mapped from the event's judged
// severity and verdict (see [DefaultSeverity]), MSGID the emitting module,
// and a structured-data element the tenant, verdict and rule for routing
// without parsing the JSON.
//
// A [Writer] is a [detect.BatchWriter]: put it behind [detect.NewAsync] so
// the data path never waits for the network:
//
//	w, err := syslog.New(syslog.Config{
//		Addr: "siem.example.lg.jp:6514",
//		TLS:  &tls.Config{RootCAs: pool},
//	})
//	if err != nil { ... }
//	defer w.Close()
//	sink, err := detect.NewAsync(detect.AsyncConfig{Writer: w, Logger: log})
//	if err != nil { ... }
//	defer sink.Close(ctx) // flushes
//	sink.Emit(ev)
//
// Syslog over TCP has no acknowledgement: a write the kernel accepted can
// still be lost when the receiver crashes. Where every event must be
// acknowledged use detect/natsink.
package syslog
