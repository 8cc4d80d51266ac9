package mailrelay

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay/internal/spool"
)

// ErrQueueLocked is returned (wrapped) when a queue directory is in use by
// a running relay: Rehome's source still belongs to a live node, or
// RehomeDir's destination is the queue of a relay that runs (ask that
// relay instead, with Server.Rehome).
var ErrQueueLocked = spool.ErrLocked

// RehomeReport says what a re-home did.
type RehomeReport struct {
	// Source is the queue directory read.
	Source string `json:"source"`
	// Imported lists the messages newly queued here, in queue order.
	Imported []RehomedMessage `json:"imported"`
	// Duplicates counts messages of the source that this queue had
	// imported before: not queued again, only marked done in the source.
	Duplicates int `json:"duplicates"`
	// Bytes is the size of the imported messages.
	Bytes int64 `json:"bytes"`
}

// RehomedMessage is one message moved into this queue. It keeps the queue
// id it had on the node it comes from.
type RehomedMessage struct {
	ID      string   `json:"id"`
	Tenant  string   `json:"tenant,omitempty"`
	From    string   `json:"from"`
	To      []string `json:"to"`
	Subject string   `json:"subject,omitempty"`
	Size    int      `json:"size"`
}

// Rehome moves every message queued in dir — the queue directory of
// another relay that is gone (its disk copied here, or a shared mount) —
// into this server's durable queue and delivers it from here. The other
// relay must not be running: its queue is locked while it runs, and
// Rehome then fails with ErrQueueLocked.
//
// Each message keeps its queue id and envelope (sender, recipients still
// due, attempts so far). It is marked done in dir once it is durable here,
// so the other relay, when it comes back, does not deliver it again; and
// this queue remembers every id it imported, so running Rehome twice, or
// on a second copy of the same queue, queues nothing twice. One event
// (dataset mail.queue, action queue_rehome) records the run. Safe for
// concurrent use; concurrent calls run one after the other.
func (s *Server) Rehome(dir string) (RehomeReport, error) {
	rep := RehomeReport{Source: dir}
	st, err := s.spool.Rehome(dir, func(r spool.Rehomed) {
		env, derr := decodeEnvelope(r.Envelope)
		if derr != nil {
			s.cfg.Logger.Error("mailrelay: re-homed message with an unreadable envelope dropped", "id", r.ID, "err", derr)
			s.spool.Done(r.ID, r.Ref)
			return
		}
		rep.Imported = append(rep.Imported, rehomed(r, env))
		s.dlv.enqueue(&qmsg{id: r.ID, gen: r.Gen, env: env, ref: r.Ref}) // data read back when delivered
	})
	rep.Duplicates, rep.Bytes = st.Duplicates, st.Bytes
	s.emitRehome(&rep, err)
	if err != nil {
		return rep, fmt.Errorf("mailrelay: rehome %s: %w", dir, err)
	}
	if len(rep.Imported) > 0 || rep.Duplicates > 0 {
		s.cfg.Logger.Info("mailrelay: queue re-homed", "source", dir, "imported", len(rep.Imported), "duplicates", rep.Duplicates)
	}
	return rep, nil
}

func rehomed(r spool.Rehomed, env *envelope) RehomedMessage {
	return RehomedMessage{ID: r.ID, Tenant: env.Tenant, From: env.From, To: env.To, Subject: env.Subject, Size: len(r.Data)}
}

func (s *Server) emitRehome(rep *RehomeReport, err error) {
	abs, _ := filepath.Abs(rep.Source)
	e := detect.Event{Time: s.cfg.Now(), Module: "mail", Dataset: "mail.queue", Category: "email", Kind: "event",
		Type: "change", Action: "queue_rehome", Outcome: "success",
		Message: fmt.Sprintf("re-homed %d messages (%d already imported) from %s", len(rep.Imported), rep.Duplicates, abs),
		Labels: []detect.Label{{Key: "source_queue", Value: abs}, {Key: "imported", Value: strconv.Itoa(len(rep.Imported))},
			{Key: "duplicates", Value: strconv.Itoa(rep.Duplicates)}}}
	if err != nil {
		e.Outcome, e.Message = "failure", e.Message+": "+err.Error()
	}
	s.cfg.Sink.Emit(e)
}

// RehomeDir is Server.Rehome for a relay that is not running: it moves the
// messages queued in src into the queue directory queueDir, where the
// relay delivers them when it starts. It fails with ErrQueueLocked if a
// relay is running on queueDir (ask it with Server.Rehome) or on src.
func RehomeDir(queueDir, src string) (RehomeReport, error) {
	rep := RehomeReport{Source: src}
	sp, _, err := spool.Open(spool.Options{Dir: queueDir})
	if err != nil {
		return rep, fmt.Errorf("mailrelay: queue: %w", err)
	}
	st, err := sp.Rehome(src, func(r spool.Rehomed) {
		env, derr := decodeEnvelope(r.Envelope)
		if derr != nil { // dropped by New at the next start, with a log line
			env = &envelope{}
		}
		rep.Imported = append(rep.Imported, rehomed(r, env))
	})
	rep.Duplicates, rep.Bytes = st.Duplicates, st.Bytes
	if cerr := sp.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return rep, fmt.Errorf("mailrelay: rehome %s: %w", src, err)
	}
	return rep, nil
}
