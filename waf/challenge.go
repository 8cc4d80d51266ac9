package waf

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/tenant"
)

// DefaultChallengeTTL is how long a passed cookie challenge counts.
const DefaultChallengeTTL = 10 * time.Minute

// challengeCookie is the cookie of the cookie challenge.
const challengeCookie = "__seccloud_chk"

// challenger issues and checks the JavaScript-free cookie challenge of
// adaptive DDoS protection: a client over its fair share is sent back to
// the same URL with a cookie; a client that returns it proves it keeps
// cookies and follows redirects, as browsers do, and flood tools that
// ignore both get only cheap 303s. The cookie is
// base64url(expiry (8 bytes, Unix seconds) | HMAC-SHA256(key, expiry |
// client address | site)[:16]), so it is worth nothing from another
// address or for another site. Safe for concurrent use.
type challenger struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

func newChallenger(cfg *DDoSConfig, now func() time.Time) (*challenger, error) {
	c := &challenger{key: cfg.ChallengeKey, ttl: cfg.ChallengeTTL, now: now}
	switch {
	case len(c.key) == 0:
		c.key = make([]byte, 32)
		if _, err := rand.Read(c.key); err != nil {
			return nil, fmt.Errorf("waf: challenge key: %w", err)
		}
	case len(c.key) < 16:
		return nil, fmt.Errorf("waf: Config.DDoS.ChallengeKey has %d bytes, want at least 16", len(c.key))
	}
	if c.ttl < 0 {
		return nil, fmt.Errorf("waf: Config.DDoS.ChallengeTTL is negative (%v)", c.ttl)
	}
	if c.ttl == 0 {
		c.ttl = DefaultChallengeTTL
	}
	return c, nil
}

func (c *challenger) mac(exp uint64, client netip.Addr, site string) []byte {
	m := hmac.New(sha256.New, c.key)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], exp)
	m.Write(b[:])
	m.Write(client.Unmap().AsSlice())
	m.Write([]byte{0})
	m.Write([]byte(site))
	return m.Sum(nil)[:16]
}

// token returns a cookie value for client and site.
func (c *challenger) token(client netip.Addr, site string) string {
	exp := uint64(c.now().Add(c.ttl).Unix())
	b := make([]byte, 8, 24)
	binary.BigEndian.PutUint64(b, exp)
	b = append(b, c.mac(exp, client, site)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// passed reports whether r carries a valid, unexpired cookie for client
// and site.
func (c *challenger) passed(r *http.Request, client netip.Addr, site string) bool {
	for _, ck := range r.CookiesNamed(challengeCookie) {
		b, err := base64.RawURLEncoding.DecodeString(ck.Value)
		if err != nil || len(b) != 24 {
			continue
		}
		exp := binary.BigEndian.Uint64(b[:8])
		if int64(exp) < c.now().Unix() {
			continue
		}
		if hmac.Equal(b[8:], c.mac(exp, client, site)) {
			return true
		}
	}
	return false
}

var pageChallenge = page{Status: http.StatusSeeOther,
	TitleJA: "アクセスを確認しています", TitleEN: "Checking your access",
	ReasonJA: "ただいまアクセスが集中しているため、ブラウザの確認を行っています。自動的に移動しない場合は、下のリンクを開いてください（Cookie を有効にしてください）。",
	ReasonEN: "The site is busy, so your browser is being checked. If you are not moved on automatically, open the link below (cookies must be enabled)."}

// challenge answers a GET/HEAD over its fair share with the cookie
// challenge: 303 to the same URL with the signed cookie, never cached.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time, client netip.Addr, v *ddosVerdict) {
	ref := newRef()
	loc := r.URL.RequestURI()
	if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
		loc = "/" // never a scheme-relative ("//host") redirect
	}
	h := w.Header()
	h.Set("Set-Cookie", (&http.Cookie{Name: challengeCookie, Value: s.chal.token(client, site.Host), Path: "/",
		MaxAge: int(s.chal.ttl / time.Second), HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}).String())
	h.Set("Location", loc)
	h.Set("Cache-Control", "no-store")
	p := pageChallenge
	p.LinkHref, p.LinkText = loc, "続ける / Continue"
	writePage(w, p, ref)
	ev := s.event(r, site, t, start)
	ev.ID, ev.HTTP.Status, ev.Type, ev.Outcome = ref, p.Status, "denied", "success"
	ev.Verdict = detect.Verdict{Action: detect.ActionDrop, Rule: v.rule, Reason: v.reason + "; cookie challenge sent"}
	ev.Labels = append(ev.Labels, detect.Label{Key: "ddos", Value: "challenge-sent"},
		detect.Label{Key: "origin_answered", Value: "false"})
	s.cfg.Sink.Emit(ev)
}
