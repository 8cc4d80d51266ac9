package waf

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// OriginAuth lets a site's origins reject traffic that did not pass the
// WAF (issue 7 part 6). The zero value adds nothing.
type OriginAuth struct {
	// Header and Value, when both set, are a secret header added to every
	// request toward the site's origins (e.g. "X-Seccloud-Origin-Auth" and
	// a long random value); a client's own header of that name is
	// removed. The origin refuses requests without it.
	Header, Value string
	// ClientCert and ClientKey are PEM files of a TLS client certificate
	// presented to the site's https:// origins (mutual TLS); both or
	// neither. Read by New.
	ClientCert, ClientKey string
}

func (a *OriginAuth) validate(where string) error {
	if (a.Header == "") != (a.Value == "") {
		return fmt.Errorf("waf: %s.OriginAuth: Header and Value go together", where)
	}
	if a.Header != "" {
		for i := 0; i < len(a.Header); i++ {
			if !isTchar(a.Header[i]) {
				return fmt.Errorf("waf: %s.OriginAuth.Header %q is not a header name", where, a.Header)
			}
		}
		if strings.ContainsAny(a.Value, "\r\n\x00") {
			return fmt.Errorf("waf: %s.OriginAuth.Value holds CR, LF or NUL", where)
		}
	}
	if (a.ClientCert == "") != (a.ClientKey == "") {
		return fmt.Errorf("waf: %s.OriginAuth: ClientCert and ClientKey go together", where)
	}
	return nil
}

// originTransport returns the transport toward a site's origins with its
// client certificate.
func (s *Server) originTransport(a OriginAuth, where string) (*http.Transport, error) {
	cert, err := tls.LoadX509KeyPair(a.ClientCert, a.ClientKey)
	if err != nil {
		return nil, fmt.Errorf("waf: %s.OriginAuth: %w", where, err)
	}
	tr := s.tr.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{}
	}
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	return tr, nil
}

// EgressAddrs returns the source addresses the WAF uses toward origins
// (OriginConfig.SourceAddr and OriginConfig.Egress): the addresses an
// origin must allow, and the only ones it should. Empty when neither is
// configured (then the system's routing chooses).
func (s *Server) EgressAddrs() []netip.Addr {
	var out []netip.Addr
	if a := s.cfg.Origins.SourceAddr; a.IsValid() {
		out = append(out, a)
	}
	for _, a := range s.cfg.Origins.Egress {
		if a != s.cfg.Origins.SourceAddr {
			out = append(out, a)
		}
	}
	return out
}

func sourceDialer(d *net.Dialer, a netip.Addr) {
	if a.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: a.AsSlice()}
	}
}
