// Command mail-alone runs seccloud's mail relay (mailrelay) on its own for
// one municipality, with an integrator's own content filter (a
// mailrelay.Filter refusing executable attachments), delivering the
// municipality's inbound mail to its mail server.
//
//	go run ./examples/mail-alone -demo-mailserver
//	curl smtp://127.0.0.1:2525 --mail-from a@internet.example --mail-rcpt mayor@city.example.jp -T examples/mail-alone/testdata/clean.eml
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/tenant"
)

// Config configures the relay. Domain, MailServer and QueueDir are required.
type Config struct {
	// Addr is the SMTP listen address; "127.0.0.1:0" picks a free port.
	Addr string
	// Hostname is the relay's name in the greeting and Received: headers.
	Hostname string
	// Network is the municipality's network (its outbound senders);
	// Domain its mail domain; MailServer (host:port) where its inbound
	// mail is delivered.
	Network    netip.Prefix
	Domain     string
	MailServer string
	// QueueDir holds the durable queue.
	QueueDir string
	// BlockExt lists attachment extensions refused with 550, e.g. ".exe".
	BlockExt []string
	// Sink receives the relay's events; nil discards them.
	Sink detect.Sink
	// Logger receives operational records; nil discards them.
	Logger *slog.Logger
}

// Relay is a running relay.
type Relay struct {
	srv    *mailrelay.Server
	ln     net.Listener
	served chan error
}

// New builds the relay and starts serving on cfg.Addr.
func New(cfg Config) (*Relay, error) {
	if cfg.Domain == "" || cfg.MailServer == "" || cfg.QueueDir == "" {
		return nil, errors.New("mail-alone: Config.Domain, MailServer and QueueDir are required")
	}
	t := tenant.Tenant{ID: "city", Name: "デモ市", MailDomains: []string{cfg.Domain},
		MailServers: []string{cfg.MailServer}, Policy: tenant.Policy{EgressOptional: true}}
	if cfg.Network.IsValid() {
		t.Networks = []netip.Prefix{cfg.Network}
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{t}, tenant.Options{})
	if err != nil {
		return nil, fmt.Errorf("mail-alone: tenant: %w", err)
	}
	srv, err := mailrelay.New(mailrelay.Config{
		Hostname:  cfg.Hostname,
		Directory: dir,
		Queue:     mailrelay.QueueConfig{Dir: cfg.QueueDir},
		Filters:   []mailrelay.Filter{AttachmentFilter{Extensions: cfg.BlockExt}},
		Sink:      cfg.Sink,
		Logger:    cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("mail-alone: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		srv.Close()
		return nil, fmt.Errorf("mail-alone: %w", err)
	}
	r := &Relay{srv: srv, ln: ln, served: make(chan error, 1)}
	go func() { r.served <- srv.Serve(ln) }()
	return r, nil
}

// Addr returns the listening address.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Shutdown stops accepting mail and waits for sessions and deliveries in
// progress (mail not yet delivered stays in the queue for the next start).
func (r *Relay) Shutdown(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	if serr := <-r.served; serr != nil && !errors.Is(serr, mailrelay.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// AttachmentFilter is an integrator's own mailrelay.Filter: it refuses
// (550) a message carrying an attachment whose file name ends in one of
// Extensions (compared case-insensitively; the default list when empty).
// The file name is read from Content-Disposition and Content-Type the way
// mail clients do, including RFC 2231 and encoded-word names, in nested
// multiparts. A message whose MIME structure cannot be read is deferred
// (4xx) rather than let through unchecked. It holds no state and is safe
// for concurrent use.
type AttachmentFilter struct {
	Extensions []string
}

// DefaultBlockExt are the extensions refused when none are configured.
var DefaultBlockExt = []string{".exe", ".scr", ".js", ".vbs", ".bat", ".cmd", ".iso", ".lnk"}

// ruleAttachment is the rule id in the events.
const ruleAttachment = "example-attachment-ext"

// maxDepth bounds multipart nesting.
const maxDepth = 8

// Check implements mailrelay.Filter.
func (f AttachmentFilter) Check(_ context.Context, m *mailrelay.Message) (detect.Verdict, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return detect.Verdict{}, fmt.Errorf("mail-alone: reading the message: %w", err)
	}
	name, err := f.find(msg.Header, msg.Body, 0)
	if err != nil {
		return detect.Verdict{}, fmt.Errorf("mail-alone: reading the MIME structure: %w", err)
	}
	if name == "" {
		return detect.Verdict{Action: detect.ActionAllow}, nil
	}
	return detect.Verdict{Action: detect.ActionBlock, Rule: ruleAttachment,
		RuleName: "executable attachment", Reason: "attachment " + name + " is not accepted"}, nil
}

// header is what mail.Header and a part's textproto.MIMEHeader share.
type header interface{ Get(string) string }

// find returns the first blocked file name in the entity (h, body).
func (f AttachmentFilter) find(h header, body io.Reader, depth int) (string, error) {
	if depth > maxDepth {
		return "", errors.New("multipart nested too deeply")
	}
	if n := f.blocked(h); n != "" {
		return n, nil
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return "", nil // a leaf (or no Content-Type: text/plain)
	}
	mr := multipart.NewReader(body, params["boundary"])
	for {
		p, err := mr.NextRawPart() // keep the transfer encoding: we only read headers
		if errors.Is(err, io.EOF) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if n, err := f.find(p.Header, p, depth+1); n != "" || err != nil {
			return n, err
		}
	}
}

// blocked returns the entity's file name if its extension is refused.
func (f AttachmentFilter) blocked(h header) string {
	exts := f.Extensions
	if len(exts) == 0 {
		exts = DefaultBlockExt
	}
	dec := new(mime.WordDecoder)
	for _, v := range []struct{ hdr, param string }{{"Content-Disposition", "filename"}, {"Content-Type", "name"}} {
		_, params, err := mime.ParseMediaType(h.Get(v.hdr))
		if err != nil || params[v.param] == "" {
			continue
		}
		name := params[v.param]
		if d, err := dec.DecodeHeader(name); err == nil {
			name = d
		}
		ext := strings.ToLower(path.Ext(strings.TrimRight(name, ". ")))
		if slices.ContainsFunc(exts, func(e string) bool { return strings.EqualFold(e, ext) }) {
			return name
		}
	}
	return ""
}

var _ mailrelay.Filter = AttachmentFilter{}

// printSink prints one line per message event (dataset mail.message). A
// demo: Fprintf to a terminal is quick; a product puts detect.Async in
// front of a slow destination.
type printSink struct{ w io.Writer }

func (s printSink) Emit(e detect.Event) {
	if e.Dataset != "mail.message" {
		return
	}
	fmt.Fprintf(s.w, "%s %s from=%s to=%v subject=%q verdict=%s rule=%s\n",
		e.Time.Format(time.RFC3339), e.Email.Direction, e.Email.From, e.Email.To, e.Email.Subject,
		e.Verdict.Action, e.Verdict.Rule)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "SMTP listen address")
	domain := flag.String("domain", "city.example.jp", "the municipality's mail domain")
	network := flag.String("net", "127.0.1.0/24", "the municipality's network (outbound senders)")
	deliver := flag.String("deliver", "", "host:port of the municipality's mail server")
	demo := flag.Bool("demo-mailserver", false, "start a recording mail server on loopback and deliver to it")
	queue := flag.String("queue", "", "queue directory (default: a temporary directory removed on exit)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*listen, *domain, *network, *deliver, *demo, *queue, log); err != nil {
		log.Error("mail-alone", "err", err)
		os.Exit(1)
	}
}

func run(listen, domain, network, deliver string, demo bool, queue string, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg := Config{Addr: listen, Hostname: "relay.example.jp", Domain: domain, MailServer: deliver,
		QueueDir: queue, Sink: printSink{os.Stdout}, Logger: log}
	var err error
	if cfg.Network, err = netip.ParsePrefix(network); err != nil {
		return fmt.Errorf("-net: %w", err)
	}
	if queue == "" {
		if cfg.QueueDir, err = os.MkdirTemp("", "mail-alone-queue-"); err != nil {
			return err
		}
		defer os.RemoveAll(cfg.QueueDir)
	}
	if demo {
		ms, err := mailrelaytest.NewSink()
		if err != nil {
			return fmt.Errorf("demo mail server: %w", err)
		}
		defer ms.Close()
		cfg.MailServer = ms.Addr
		go func() {
			for n := 1; ; n++ {
				got := ms.Wait(ctx, n)
				if len(got) < n {
					return
				}
				log.Info("the city's mail server received a message", "from", got[n-1].From, "to", got[n-1].To, "bytes", len(got[n-1].Data))
			}
		}()
	}
	r, err := New(cfg)
	if err != nil {
		return err
	}
	log.Info("relay listening", "addr", r.Addr(), "domain", domain, "deliver_to", cfg.MailServer, "queue", cfg.QueueDir)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.Shutdown(sctx)
}
