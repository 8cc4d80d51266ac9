package waf

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// certs loads each site's certificate from its files and reloads it when
// the files change. A handshake stats the files at most once per check
// interval; a failed reload keeps serving the previous certificate.
type certs struct {
	s  *Server
	mu sync.Mutex
	m  map[certKey]*certEntry
}

type certKey struct{ cert, key string }

type certEntry struct {
	mu       sync.Mutex
	cert     *tls.Certificate
	certStat fileStamp
	keyStat  fileStamp
	checked  time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stamp(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

var errNoSNI = errors.New("waf: TLS client sent no server name (SNI)")

// getCertificate implements tls.Config.GetCertificate.
func (c *certs) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if hello.ServerName == "" {
		return nil, errNoSNI
	}
	site, _, ok := c.s.cfg.Directory.BySite(hello.ServerName)
	if !ok {
		return nil, fmt.Errorf("waf: no site for server name %q", hello.ServerName)
	}
	if site.TLSCert == "" || site.TLSKey == "" {
		return nil, fmt.Errorf("waf: site %s has no certificate", site.Host)
	}
	return c.get(certKey{site.TLSCert, site.TLSKey})
}

func (c *certs) get(k certKey) (*tls.Certificate, error) {
	c.mu.Lock()
	e := c.m[k]
	if e == nil {
		e = &certEntry{}
		if c.m == nil {
			c.m = map[certKey]*certEntry{}
		}
		c.m[k] = e
	}
	c.mu.Unlock()

	now := c.s.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cert != nil && now.Sub(e.checked) < c.s.cfg.TLS.CertCheckInterval {
		return e.cert, nil
	}
	e.checked = now
	cs, err1 := stamp(k.cert)
	ks, err2 := stamp(k.key)
	if err := errors.Join(err1, err2); err != nil {
		if e.cert != nil {
			c.s.log.Warn("waf: certificate files unreadable; keeping the loaded one", "cert", k.cert, "err", err)
			return e.cert, nil
		}
		return nil, fmt.Errorf("waf: certificate: %w", err)
	}
	if e.cert != nil && cs == e.certStat && ks == e.keyStat {
		return e.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(k.cert, k.key)
	if err != nil {
		if e.cert != nil {
			// Often a renewal caught half-written: try again next interval.
			c.s.log.Warn("waf: certificate reload failed; keeping the loaded one", "cert", k.cert, "err", err)
			return e.cert, nil
		}
		return nil, fmt.Errorf("waf: certificate: %w", err)
	}
	if e.cert != nil {
		c.s.log.Info("waf: certificate reloaded", "cert", k.cert)
	}
	e.cert, e.certStat, e.keyStat = &cert, cs, ks
	return e.cert, nil
}
