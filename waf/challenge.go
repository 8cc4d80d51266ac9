package waf

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"strconv"
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
	key  []byte
	ttl  time.Duration
	work int // proof-of-work bits; 0 = cookie challenge only
	now  func() time.Time
}

// maxChallengeWork bounds DDoSConfig.ChallengeWork (2^24 hashes is some
// seconds in a slow browser).
const maxChallengeWork = 24

func newChallenger(cfg *DDoSConfig, now func() time.Time) (*challenger, error) {
	c := &challenger{key: cfg.ChallengeKey, ttl: cfg.ChallengeTTL, work: cfg.ChallengeWork, now: now}
	if c.work < 0 || c.work > maxChallengeWork {
		return nil, fmt.Errorf("waf: Config.DDoS.ChallengeWork %d is not 0-%d", c.work, maxChallengeWork)
	}
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
// and site: the signed token itself, or, with proof of work, "token.n"
// where SHA-256("token:n") starts with c.work zero bits.
func (c *challenger) passed(r *http.Request, client netip.Addr, site string) bool {
	for _, ck := range r.CookiesNamed(challengeCookie) {
		tok := ck.Value
		if c.work > 0 {
			var n string
			var ok bool
			if tok, n, ok = strings.Cut(tok, "."); !ok || !workDone(tok, n, c.work) {
				continue
			}
		}
		b, err := base64.RawURLEncoding.DecodeString(tok)
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

// workDone reports whether n (decimal, at most 12 digits) solves the
// proof of work of seed: SHA-256(seed ":" n) begins with bits zero bits.
func workDone(seed, n string, bits int) bool {
	if n == "" || len(n) > 12 || strings.Trim(n, "0123456789") != "" {
		return false
	}
	sum := sha256.Sum256([]byte(seed + ":" + n))
	return binary.BigEndian.Uint32(sum[:4])>>(32-bits) == 0
}

var pageChallenge = page{Status: http.StatusSeeOther,
	TitleJA: "アクセスを確認しています", TitleEN: "Checking your access",
	ReasonJA: "ただいまアクセスが集中しているため、ブラウザの確認を行っています。自動的に移動しない場合は、下のリンクを開いてください（Cookie を有効にしてください）。",
	ReasonEN: "The site is busy, so your browser is being checked. If you are not moved on automatically, open the link below (cookies must be enabled)."}

// challenge answers a GET/HEAD over its fair share with the cookie
// challenge: 303 to the same URL with the signed cookie, never cached.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time, client netip.Addr, v *ddosVerdict) {
	ref := newRef()
	if s.chal.work > 0 {
		s.workChallenge(w, r, site, t, start, client, v, ref)
		return
	}
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
	s.challengeSent(r, site, t, start, ref, p.Status, v.rule, v.reason+"; cookie challenge sent")
}

// challengeSent emits the event of a challenge answered instead of the
// request (action drop, label ddos=challenge-sent).
func (s *Server) challengeSent(r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time, ref string, status int, rule, reason string) {
	ev := s.event(r, site, t, start)
	ev.ID, ev.HTTP.Status, ev.Type, ev.Outcome = ref, status, "denied", "success"
	ev.Verdict = detect.Verdict{Action: detect.ActionDrop, Rule: rule, Reason: reason}
	ev.Labels = append(ev.Labels, detect.Label{Key: "ddos", Value: "challenge-sent"},
		detect.Label{Key: "origin_answered", Value: "false"})
	s.cfg.Sink.Emit(ev)
}

// workChallenge answers with the proof-of-work page: 503, never cached,
// the signed seed and the script that finds the number, sets the cookie
// and reloads the page. The script runs under a per-response CSP nonce.
func (s *Server) workChallenge(w http.ResponseWriter, r *http.Request, site *tenant.Site, t *tenant.Tenant, start time.Time, client netip.Addr, v *ddosVerdict, ref string) {
	var nb [16]byte
	_, _ = rand.Read(nb[:])
	nonce := hex.EncodeToString(nb[:]) // no character HTML would escape
	var buf bytes.Buffer
	_ = workTmpl.Execute(&buf, struct {
		Ref, Nonce, Seed, Cookie string
		Work, TTL                int
		Secure                   bool
	}{ref, nonce, s.chal.token(client, site.Host), challengeCookie, s.chal.work, int(s.chal.ttl / time.Second), r.TLS != nil})
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", "1")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(buf.Bytes())
	s.challengeSent(r, site, t, start, ref, http.StatusServiceUnavailable, v.rule, v.reason+"; proof-of-work challenge sent")
}

// workTmpl is the proof-of-work page. Its script hashes with its own
// SHA-256 (crypto.subtle exists only on HTTPS pages; disaster sites may
// be plain HTTP), in slices, so the page stays responsive.
var workTmpl = template.Must(template.New("work").Parse(`<!DOCTYPE html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>アクセスを確認しています / Checking your access</title>
<style>body{font-family:sans-serif;max-width:48em;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em;color:#a00}h2{font-size:1.1em;color:#a00}
.en{margin-top:2em;border-top:1px solid #ccc;padding-top:1em}</style>
</head>
<body>
<h1>アクセスを確認しています</h1>
<p>ただいまアクセスが集中しているため、ブラウザの確認を行っています。数秒で自動的にページが表示されます。</p>
<noscript><p>JavaScript と Cookie を有効にしてから、再度読み込んでください。</p></noscript>
<p>参照番号: {{.Ref}}（HTTP 503）</p>
<div class="en" lang="en">
<h2>Checking your access</h2>
<p>The site is busy, so your browser is being checked. The page will appear by itself in a few seconds.</p>
<noscript><p>Please enable JavaScript and cookies, then reload.</p></noscript>
<p>Reference: {{.Ref}} (HTTP 503)</p>
</div>
<script nonce="{{.Nonce}}">
(function () {
  var seed = {{.Seed}}, bits = {{.Work}}, ttl = {{.TTL}}, secure = {{.Secure}};
  var K = [], H0 = [];
  function frac(x) { return ((x - Math.floor(x)) * 4294967296) >>> 0; }
  for (var p = 2, n = 0; n < 64; p++) {
    var prime = true;
    for (var d = 2; d * d <= p; d++) { if (p % d === 0) { prime = false; break; } }
    if (!prime) { continue; }
    if (n < 8) { H0[n] = frac(Math.sqrt(p)); }
    K[n++] = frac(Math.pow(p, 1 / 3));
  }
  function rotr(x, k) { return (x >>> k) | (x << (32 - k)); }
  function first(msg) {
    var l = msg.length, words = [], i, j;
    for (i = 0; i < l; i++) { words[i >> 2] |= (msg.charCodeAt(i) & 255) << (24 - (i % 4) * 8); }
    words[l >> 2] |= 0x80 << (24 - (l % 4) * 8);
    var nw = (((l + 8) >> 6) << 4) + 16;
    words[nw - 1] = l * 8;
    var h = H0.slice(), w = [];
    for (j = 0; j < nw; j += 16) {
      for (i = 0; i < 64; i++) {
        if (i < 16) { w[i] = words[j + i] | 0; continue; }
        var a = w[i - 15], b = w[i - 2];
        var s0 = rotr(a, 7) ^ rotr(a, 18) ^ (a >>> 3), s1 = rotr(b, 17) ^ rotr(b, 19) ^ (b >>> 10);
        w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      var A = h[0], B = h[1], C = h[2], D = h[3], E = h[4], F = h[5], G = h[6], H = h[7];
      for (i = 0; i < 64; i++) {
        var t1 = (H + (rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25)) + ((E & F) ^ (~E & G)) + K[i] + w[i]) | 0;
        var t2 = ((rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22)) + ((A & B) ^ (A & C) ^ (B & C))) | 0;
        H = G; G = F; F = E; E = (D + t1) | 0; D = C; C = B; B = A; A = (t1 + t2) | 0;
      }
      h[0] = (h[0] + A) | 0; h[1] = (h[1] + B) | 0; h[2] = (h[2] + C) | 0; h[3] = (h[3] + D) | 0;
      h[4] = (h[4] + E) | 0; h[5] = (h[5] + F) | 0; h[6] = (h[6] + G) | 0; h[7] = (h[7] + H) | 0;
    }
    return h[0];
  }
  var k = 0;
  function run() {
    for (var end = k + 20000; k < end; k++) {
      if ((first(seed + ":" + k) >>> (32 - bits)) === 0) {
        document.cookie = "{{.Cookie}}=" + seed + "." + k + "; path=/; max-age=" + ttl + "; samesite=lax" + (secure ? "; secure" : "");
        location.reload();
        return;
      }
    }
    setTimeout(run, 0);
  }
  run();
})();
</script>
</body>
</html>
`))
