// Command mailrelayd runs the relay alone, for benchmarks and manual tests:
// one tenant owning -tenant-net and -tenant-domain, outbound mail to
// -smarthost, every event written as ECS JSON lines to -log.
//
//	mailrelayd -listen 127.0.0.1:12527 -queue /tmp/q -smarthost 127.0.0.1:12526 \
//	    -tenant-net 127.0.0.1/32 -tenant-domain client.bench.test -log /tmp/mail.log
package main

import (
	"bufio"
	"context"
	"flag"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/internal/clamd"
	"github.com/jichitai/seccloud/mailrelay"
	"github.com/jichitai/seccloud/mailrelay/mailrelaytest"
	"github.com/jichitai/seccloud/mailrelay/rspamd"
	"github.com/jichitai/seccloud/mailrelay/spam"
	"github.com/jichitai/seccloud/tenant"
)

// fileSink writes events as ECS JSON lines through a buffer flushed every
// 100 ms (the embedded store of the appliance does the same job).
type fileSink struct {
	mu  sync.Mutex
	w   *bufio.Writer
	buf []byte
}

func (s *fileSink) Emit(e detect.Event) {
	s.mu.Lock()
	s.buf = detect.AppendECS(s.buf[:0], &e)
	s.buf = append(s.buf, '\n')
	s.w.Write(s.buf)
	s.mu.Unlock()
}

func (s *fileSink) flush() {
	s.mu.Lock()
	s.w.Flush()
	s.mu.Unlock()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:12527", "SMTP listen address")
	queue := flag.String("queue", "", "queue directory (required)")
	smarthost := flag.String("smarthost", "", "outbound next hop host:port")
	hostname := flag.String("hostname", "relay.bench.test", "relay host name")
	tnet := flag.String("tenant-net", "127.0.0.1/32", "the tenant's network")
	tdom := flag.String("tenant-domain", "client.bench.test", "the tenant's mail domain")
	tserver := flag.String("tenant-server", "127.0.0.1:12526", "the tenant's inbound mail server")
	logFile := flag.String("log", "", "event log file (ECS JSON lines); empty = none")
	nosync := flag.Bool("nosync", false, "turn queue fsync off (never in production)")
	workers := flag.Int("workers", 0, "delivery workers (0 = default)")
	authFake := flag.Bool("auth-fixture", false, "check SPF/DKIM/DMARC on inbound mail against a built-in DNS fixture "+
		"(client.bench.test: SPF ip4:127.0.0.0/8 -all, DMARC p=none); with -tenant-net outside the client's address the "+
		"bench workload becomes inbound")
	clamdAddr := flag.String("clamd", "", "scan every message with clamd at this address (host:port or socket path)")
	spamOn := flag.Bool("spam", false, "score inbound mail for spam and advertising (shipped classifier, header rules)")
	rspamdURL := flag.String("rspamd", "", "score inbound mail with rspamd at this URL (e.g. http://127.0.0.1:11333) instead of the built-in scorer")
	quarDir := flag.String("quarantine", "", "quarantine directory (empty = none: quarantine verdicts are refused)")
	reportOnly := flag.Bool("report-only", false, "report-only mode: every check runs, nothing is stopped (for the bench)")
	flag.Parse()
	if *queue == "" {
		log.Fatal("mailrelayd: -queue is required")
	}
	dir, err := tenant.NewSnapshot([]tenant.Tenant{{ID: "bench", Name: "bench",
		Networks: []netip.Prefix{netip.MustParsePrefix(*tnet)}, MailDomains: []string{*tdom},
		MailServers: []string{*tserver}, Policy: tenant.Policy{EgressOptional: true}}}, tenant.Options{})
	if err != nil {
		log.Fatal(err)
	}
	var sink detect.Sink = detect.Discard
	var fs *fileSink
	if *logFile != "" {
		f, err := os.OpenFile(*logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		fs = &fileSink{w: bufio.NewWriterSize(f, 1<<20)}
		sink = fs
		go func() {
			for range time.Tick(100 * time.Millisecond) {
				fs.flush()
			}
		}()
	}
	var auth mailrelay.AuthConfig
	if *authFake {
		auth.Resolver = &mailrelaytest.DNS{TXT: map[string][]string{
			"client.bench.test":        {"v=spf1 ip4:127.0.0.0/8 -all"},
			"_dmarc.client.bench.test": {"v=DMARC1; p=none"},
		}}
	}
	var content mailrelay.ContentConfig
	if *spamOn {
		sc, err := spam.New(spam.Config{})
		if err != nil {
			log.Fatal(err)
		}
		content.Spam = sc
	}
	if *rspamdURL != "" {
		rs, err := rspamd.New(rspamd.Config{URL: *rspamdURL})
		if err != nil {
			log.Fatal(err)
		}
		content.Scorer = rs
	}
	if *clamdAddr != "" {
		c, err := clamd.New(clamd.Config{Address: *clamdAddr})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		content.AV = c
	}
	srv, err := mailrelay.New(mailrelay.Config{
		Content:    content,
		Quarantine: mailrelay.QuarantineConfig{Dir: *quarDir},
		ReportOnly: *reportOnly,
		Auth:       auth,
		Hostname:   *hostname,
		Directory:  dir,
		Queue:      mailrelay.QueueConfig{Dir: *queue, NoSync: *nosync},
		Delivery:   mailrelay.DeliveryConfig{Smarthost: *smarthost, Workers: *workers},
		Sink:       sink,
		Logger:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	err = srv.Serve(l)
	if fs != nil {
		fs.flush()
	}
	if err != mailrelay.ErrServerClosed {
		log.Fatal(err)
	}
}
