// Package mailrelaytest provides fakes for testing code that uses
// mailrelay: an SMTP sink that records what it receives (a tenant's mail
// server or a smarthost) and a fake DNS resolver.
package mailrelaytest

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
)

// Mail is one message a Sink received.
type Mail struct {
	From string
	To   []string
	Data []byte // dot stuffing undone, CRLF line ends
	Body string // the MAIL FROM BODY= parameter, if any
	// Client is the address the message came from (ip:port), e.g. to
	// check the relay's egress address.
	Client string
}

// Sink is a minimal SMTP server on loopback that records messages. Set
// Reply before use to answer RCPT with an error for some recipients.
// Its methods are safe for concurrent use.
type Sink struct {
	// Addr is the host:port the sink listens on.
	Addr string
	// Reply, when non-nil, is asked for each RCPT; a non-empty result
	// (e.g. "451 4.3.0 try later") is sent instead of 250.
	Reply func(rcpt string) string
	// NoPipelining and No8BitMIME remove those extensions from EHLO.
	NoPipelining, No8BitMIME bool

	l    net.Listener
	mu   sync.Mutex
	msgs []Mail
	ch   chan struct{}
	wg   sync.WaitGroup
}

// NewSink starts a sink on 127.0.0.1 with a free port.
func NewSink() (*Sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Sink{Addr: l.Addr().String(), l: l, ch: make(chan struct{}, 1)}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Close stops the sink, ending sessions still open (a client may keep an
// idle connection cached), and waits for them.
func (s *Sink) Close() error {
	err := s.l.Close()
	s.wg.Wait()
	return err
}

// Messages returns a copy of what was received so far.
func (s *Sink) Messages() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.msgs...)
}

// Wait blocks until at least n messages were received or ctx is done, and
// returns what was received.
func (s *Sink) Wait(ctx context.Context, n int) []Mail {
	for {
		m := s.Messages()
		if len(m) >= n {
			return m
		}
		select {
		case <-ctx.Done():
			return m
		case <-s.ch:
		}
	}
}

func (s *Sink) serve() {
	defer s.wg.Done()
	var conns sync.WaitGroup
	open := map[net.Conn]struct{}{}
	var mu sync.Mutex
	for {
		c, err := s.l.Accept()
		if err != nil {
			// Closed: end the sessions still open (clients may keep idle
			// connections cached) and wait for them.
			mu.Lock()
			for c := range open {
				c.Close()
			}
			mu.Unlock()
			conns.Wait()
			return
		}
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.session(c)
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

func (s *Sink) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(l string) { w.WriteString(l + "\r\n") }
	say("220 sink ESMTP")
	w.Flush()
	var cur Mail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			say("250-sink")
			if !s.NoPipelining {
				say("250-PIPELINING")
			}
			if !s.No8BitMIME {
				say("250-8BITMIME")
			}
			say("250 SMTPUTF8")
		case "HELO", "NOOP", "RSET":
			cur = Mail{}
			say("250 ok")
		case "MAIL":
			cur = Mail{}
			a := arg[len("FROM:"):]
			addr, params, _ := strings.Cut(a, " ")
			cur.From = strings.Trim(addr, "<>")
			for _, p := range strings.Fields(params) {
				if k, v, _ := strings.Cut(p, "="); strings.EqualFold(k, "BODY") {
					cur.Body = v
				}
			}
			say("250 2.1.0 ok")
		case "RCPT":
			rc := strings.Trim(arg[len("TO:"):], "<>")
			if s.Reply != nil {
				if rp := s.Reply(rc); rp != "" {
					say(rp)
					continue
				}
			}
			cur.To = append(cur.To, rc)
			say("250 2.1.5 ok")
		case "DATA":
			if len(cur.To) == 0 {
				say("554 5.5.1 no valid recipients")
				break
			}
			say("354 go")
			w.Flush()
			var b bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				if strings.HasPrefix(l, ".") {
					l = l[1:]
				}
				b.WriteString(l)
			}
			cur.Data = b.Bytes()
			cur.Client = c.RemoteAddr().String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			select {
			case s.ch <- struct{}{}:
			default:
			}
			cur = Mail{}
			say("250 2.0.0 queued")
		case "QUIT":
			say("221 bye")
			w.Flush()
			return
		default:
			say("502 5.5.1 no")
		}
		if r.Buffered() == 0 {
			w.Flush()
		}
	}
}
