// Package notifytest holds fakes for testing notification: a loopback SMTP
// sink that speaks enough ESMTP (with STARTTLS) for net/smtp and records
// what it receives, and a self-signed TLS certificate for it.
package notifytest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Mail is one message received by the sink.
type Mail struct {
	From string
	To   []string
	Data []byte
	// TLS reports whether the message came over STARTTLS.
	TLS bool
}

// Subject returns the decoded Subject header.
func (m Mail) Subject() string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return ""
	}
	s, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return ""
	}
	return s
}

// Header returns a raw header value.
func (m Mail) Header(k string) string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return ""
	}
	return msg.Header.Get(k)
}

// Text returns the body, decoded from base64 when so encoded.
func (m Mail) Text() string {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		return ""
	}
	b, _ := io.ReadAll(msg.Body)
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "base64") {
		d, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\r", "", "\n", "").Replace(string(b)))
		if err == nil {
			return string(d)
		}
	}
	return string(b)
}

// SMTPSink is a loopback SMTP server that accepts every message (or refuses
// recipients while failing) and records it. Safe for concurrent use.
type SMTPSink struct {
	// Addr is the listening address, "127.0.0.1:port".
	Addr string

	ln   net.Listener
	tls  *tls.Config
	fail atomic.Bool
	mu   sync.Mutex
	got  []Mail
	wg   sync.WaitGroup
	hook func(Mail)
}

// NewSMTPSink starts a sink on 127.0.0.1. With tlsConfig non-nil it offers
// STARTTLS.
func NewSMTPSink(tlsConfig *tls.Config) (*SMTPSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &SMTPSink{Addr: ln.Addr().String(), ln: ln, tls: tlsConfig}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// OnMail sets a function called with each message as it is accepted.
func (s *SMTPSink) OnMail(f func(Mail)) {
	s.mu.Lock()
	s.hook = f
	s.mu.Unlock()
}

// SetFail makes the sink answer 451 to RCPT TO (true) or accept again.
func (s *SMTPSink) SetFail(v bool) { s.fail.Store(v) }

// Mails returns the messages received so far.
func (s *SMTPSink) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.got...)
}

// Close stops the sink.
func (s *SMTPSink) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *SMTPSink) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.session(c)
		}()
	}
}

func (s *SMTPSink) session(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(line string) { w.WriteString(line + "\r\n"); w.Flush() }
	say("220 sink.test ESMTP")
	var cur Mail
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(line)
		switch {
		case strings.HasPrefix(verb, "EHLO"):
			if s.tls != nil && !secure {
				say("250-sink.test")
				say("250-STARTTLS")
				say("250 8BITMIME")
			} else {
				say("250-sink.test")
				say("250 8BITMIME")
			}
		case strings.HasPrefix(verb, "HELO"):
			say("250 sink.test")
		case verb == "STARTTLS" && s.tls != nil && !secure:
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, secure = tc, true
			r, w = bufio.NewReader(tc), bufio.NewWriter(tc)
			cur = Mail{}
		case strings.HasPrefix(verb, "MAIL FROM:"):
			cur = Mail{From: strings.Trim(line[10:], "<> "), TLS: secure}
			say("250 ok")
		case strings.HasPrefix(verb, "RCPT TO:"):
			if s.fail.Load() {
				say("451 4.3.0 try again later")
				continue
			}
			cur.To = append(cur.To, strings.Trim(line[8:], "<> "))
			say("250 ok")
		case verb == "DATA":
			say("354 end with .")
			var b bytes.Buffer
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.Data = b.Bytes()
			s.mu.Lock()
			s.got = append(s.got, cur)
			hook := s.hook
			s.mu.Unlock()
			if hook != nil {
				hook(cur)
			}
			say("250 queued")
		case verb == "RSET":
			cur = Mail{}
			say("250 ok")
		case verb == "NOOP":
			say("250 ok")
		case verb == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}

// SelfSigned returns a server TLS config for "localhost" and 127.0.0.1 and
// a pool trusting it (for the client).
func SelfSigned() (*tls.Config, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, pool, nil
}
