package mailrelay

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"net"
	"strings"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/mailrelay/internal/spf"
	"github.com/jichitai/seccloud/tenant"
)

// Resolver is the DNS access sender authentication needs; *net.Resolver
// implements it. A *net.DNSError with IsNotFound means "no such name or
// no records"; any other error is a temporary failure. Tests inject a fake
// so that no lookup leaves the machine.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, network, host string) ([]net.IP, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// AuthConfig configures sender authentication (SPF, DKIM, DMARC) of
// inbound mail. The zero value turns it off.
type AuthConfig struct {
	// Resolver answers the SPF, DKIM and DMARC lookups; nil turns sender
	// authentication off.
	Resolver Resolver
	// MaxSignatures caps the DKIM signatures verified per message; 0
	// means 5.
	MaxSignatures int
	// SigningKeys sign outbound mail (from a tenant to the internet) with
	// DKIM (relaxed/relaxed, SHA-256) when its From: domain is a key's
	// Domain or a subdomain of it; the most specific key wins. Nil means
	// no signing. Works without a Resolver.
	SigningKeys []DKIMKey
}

// DKIMKey is a DKIM signing key of a tenant mail domain. Its public half
// is published at Selector._domainkey.Domain.
type DKIMKey struct {
	Domain   string
	Selector string
	// Signer is an *rsa.PrivateKey (2048 bits or more) or an
	// ed25519.PrivateKey.
	Signer crypto.Signer
}

// signingKey returns the key for header-From domain d.
func (c *AuthConfig) signingKey(d string) *DKIMKey {
	var best *DKIMKey
	for i := range c.SigningKeys {
		k := &c.SigningKeys[i]
		if (strings.EqualFold(d, k.Domain) || strings.HasSuffix(strings.ToLower(d), "."+strings.ToLower(k.Domain))) &&
			(best == nil || len(k.Domain) > len(best.Domain)) {
			best = k
		}
	}
	return best
}

// sign returns the DKIM-Signature header field for msg.
func sign(k *DKIMKey, msg []byte) ([]byte, error) {
	s, err := dkim.NewSigner(&dkim.SignOptions{Domain: k.Domain, Selector: k.Selector, Signer: k.Signer,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed, BodyCanonicalization: dkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"}})
	if err != nil {
		return nil, err
	}
	if _, err := s.Write(msg); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Close(); err != nil {
		return nil, err
	}
	return []byte(s.Signature()), nil
}

// AuthResults are the sender authentication results of a message, as in
// its Authentication-Results header: "pass", "fail", "softfail",
// "neutral", "none", "temperror", "permerror"; "" when not checked.
type AuthResults struct {
	SPF   string
	DKIM  string
	DMARC string
	// SPFDomain is the MAIL FROM (or HELO) domain SPF checked; DKIMDomains
	// the d= of the passing signatures; DMARCPolicy the policy applied.
	SPFDomain   string
	DKIMDomains []string
	DMARCPolicy string
	// HeaderFrom is the domain of the From: header.
	HeaderFrom string
}

type ctxLookup struct {
	ctx context.Context
	r   Resolver
}

func (l ctxLookup) txt(name string) ([]string, error) { return l.r.LookupTXT(l.ctx, name) }

// authenticate checks SPF, DKIM and DMARC for an inbound message and
// returns the results and the verdict of the authentication policy:
//
//   - DMARC fail with p=reject: Block.
//   - DMARC fail with p=quarantine: Quarantine when the server has a
//     quarantine store, else Report (delivered, marked in
//     Authentication-Results).
//   - From: a tenant's own domain that does not authenticate (DMARC
//     fail, or no DMARC record and SPF fail): Block, whatever the
//     domain's published policy (no spoofing of the municipalities).
//   - a temporary DNS error on the policy decision: TempFail.
func (s *Server) authenticate(ctx context.Context, m *Message, _ *tenant.Tenant) (AuthResults, detect.Verdict) {
	cfg := &s.cfg
	r := cfg.Auth.Resolver
	var a AuthResults

	// SPF on MAIL FROM (or HELO for the null sender).
	chk := &spf.Checker{Resolver: r, Hostname: cfg.Hostname, Now: cfg.Now}
	res, _ := chk.Check(ctx, m.Client.Addr(), m.Helo, m.From)
	a.SPF = string(res)
	if m.From != "" {
		a.SPFDomain = domainOf(m.From)
	} else {
		a.SPFDomain = strings.ToLower(m.Helo)
	}

	// DKIM.
	maxSig := cfg.Auth.MaxSignatures
	if maxSig == 0 {
		maxSig = 5
	}
	look := ctxLookup{ctx, r}
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Data), &dkim.VerifyOptions{LookupTXT: look.txt, MaxVerifications: maxSig})
	switch {
	case err != nil && len(vs) == 0:
		a.DKIM = "permerror"
	case len(vs) == 0:
		a.DKIM = "none"
	default:
		a.DKIM = "fail"
		for _, v := range vs {
			switch {
			case v.Err == nil:
				a.DKIM = "pass"
				a.DKIMDomains = append(a.DKIMDomains, strings.ToLower(v.Domain))
			case dkim.IsTempFail(v.Err) && a.DKIM != "pass":
				a.DKIM = "temperror"
			}
		}
	}

	// DMARC.
	from := addrDomain(m.HeaderFrom)
	a.HeaderFrom = from
	_, own := s.mailTenant(from)
	if from == "" {
		a.DMARC = "permerror"
		return a, detect.Verdict{Action: detect.ActionBlock, Rule: "mail-no-from", Reason: "no valid From: header"}
	}
	rec, policyDomain, err := lookupDMARC(look, from)
	switch {
	case err != nil && dmarc.IsTempFail(err):
		a.DMARC = "temperror"
		if own {
			return a, detect.Verdict{Action: detect.ActionTempFail, Rule: "mail-dmarc", Reason: "DMARC lookup failed"}
		}
		return a, detect.Verdict{}
	case rec == nil:
		a.DMARC = "none"
		if own && (res == spf.Fail || res == spf.SoftFail) {
			return a, detect.Verdict{Action: detect.ActionBlock, Rule: "mail-own-domain-spoof", RuleName: "tenant domain spoofing",
				Reason: "From: " + from + " is a tenant domain and SPF " + string(res)}
		}
		return a, detect.Verdict{}
	}
	spfAligned := res == spf.Pass && aligned(a.SPFDomain, from, policyDomain, rec.SPFAlignment)
	dkimAligned := false
	for _, d := range a.DKIMDomains {
		if aligned(d, from, policyDomain, rec.DKIMAlignment) {
			dkimAligned = true
		}
	}
	if spfAligned || dkimAligned {
		a.DMARC = "pass"
		return a, detect.Verdict{}
	}
	a.DMARC = "fail"
	p := rec.Policy
	if policyDomain != from && rec.SubdomainPolicy != "" {
		p = rec.SubdomainPolicy
	}
	a.DMARCPolicy = string(p)
	reason := "DMARC fail for " + from + " (p=" + string(p) + ")"
	switch {
	case p == dmarc.PolicyReject, own:
		return a, detect.Verdict{Action: detect.ActionBlock, Rule: "mail-dmarc", RuleName: "DMARC policy", Reason: reason}
	case p == dmarc.PolicyQuarantine:
		if s.quar != nil {
			return a, detect.Verdict{Action: detect.ActionQuarantine, Rule: "mail-dmarc", RuleName: "DMARC policy", Reason: reason}
		}
		return a, detect.Verdict{Action: detect.ActionReport, Rule: "mail-dmarc", RuleName: "DMARC policy", Reason: reason + "; no quarantine store, delivered"}
	}
	return a, detect.Verdict{}
}

// lookupDMARC finds the DMARC record for domain by the DNS tree walk of
// DMARCbis (RFC 9989): the domain itself, then its parents up to (not
// including) the top-level domain, at most 8 lookups. It returns the record
// and the domain where it was found.
func lookupDMARC(l ctxLookup, domain string) (*dmarc.Record, string, error) {
	d := domain
	for i := 0; i < 8; i++ {
		rec, err := dmarc.LookupWithOptions(d, &dmarc.LookupOptions{LookupTXT: l.txt})
		if err == nil {
			return rec, d, nil
		}
		if dmarc.IsTempFail(err) {
			return nil, "", err
		}
		dot := strings.IndexByte(d, '.')
		if dot < 0 || !strings.Contains(d[dot+1:], ".") {
			break
		}
		d = d[dot+1:]
	}
	return nil, "", errors.New("no policy")
}

// aligned checks identifier alignment: strict means equal domains; relaxed
// means both under the same organisational domain, approximated by the
// domain where the DMARC record was found (or one domain being a
// subdomain of the other).
func aligned(id, from, policyDomain string, mode dmarc.AlignmentMode) bool {
	id, from = strings.ToLower(id), strings.ToLower(from)
	if id == from {
		return true
	}
	if mode == dmarc.AlignmentStrict {
		return false
	}
	under := func(a, b string) bool { return a == b || strings.HasSuffix(a, "."+b) }
	return under(id, from) || under(from, id) || (under(id, policyDomain) && under(from, policyDomain))
}

// appendAuthResults appends an Authentication-Results header (RFC 8601).
func appendAuthResults(dst []byte, host string, a AuthResults) []byte {
	dst = append(dst, "Authentication-Results: "...)
	dst = append(dst, host...)
	dst = append(dst, ";\r\n\tspf="...)
	dst = append(dst, a.SPF...)
	dst = append(dst, " smtp.mailfrom="...)
	dst = append(dst, a.SPFDomain...)
	dst = append(dst, ";\r\n\tdkim="...)
	dst = append(dst, a.DKIM...)
	if len(a.DKIMDomains) > 0 {
		dst = append(dst, " header.d="...)
		dst = append(dst, a.DKIMDomains[0]...)
	}
	dst = append(dst, ";\r\n\tdmarc="...)
	dst = append(dst, a.DMARC...)
	if a.DMARCPolicy != "" {
		dst = append(dst, " policy.dmarc="...)
		dst = append(dst, a.DMARCPolicy...)
	}
	if a.HeaderFrom != "" && checkHelo(a.HeaderFrom) == nil {
		dst = append(dst, " header.from="...)
		dst = append(dst, a.HeaderFrom...)
	}
	return append(dst, "\r\n"...)
}

// stripAuthResults removes from the header of msg every
// Authentication-Results field that claims to come from host (RFC 8601
// 5: a forged result with our authserv-id must not reach the recipient).
// It returns msg itself when there is none.
func stripAuthResults(msg []byte, host string) []byte {
	const name = "authentication-results:"
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(msg)
	}
	hdr := msg[:end]
	if !bytes.Contains(bytes.ToLower(hdr), []byte(name)) {
		return msg
	}
	out := make([]byte, 0, len(msg))
	i := 0
	for i < end {
		// one field: a line and its continuation lines
		j := i
		for {
			k := bytes.Index(msg[j:end], []byte("\r\n"))
			if k < 0 {
				j = end
				break
			}
			j += k + 2
			if j >= end || (msg[j] != ' ' && msg[j] != '\t') {
				break
			}
		}
		field := msg[i:j]
		drop := false
		if len(field) > len(name) && bytes.EqualFold(field[:len(name)], []byte(name)) {
			v := bytes.TrimLeft(field[len(name):], " \t\r\n")
			if len(v) >= len(host) && bytes.EqualFold(v[:len(host)], []byte(host)) &&
				(len(v) == len(host) || strings.IndexByte(" \t;\r", v[len(host)]) >= 0) {
				drop = true
			}
		}
		if !drop {
			out = append(out, field...)
		}
		i = j
	}
	return append(out, msg[end:]...)
}
