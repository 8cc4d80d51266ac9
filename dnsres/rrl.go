package dnsres

import (
	"errors"
	"hash/maphash"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/jichitai/seccloud/ratelimit"
)

// Defaults of RRLConfig.
const (
	DefaultRRLResponseRate = 20
	DefaultRRLSlip         = 2
	DefaultRRLIPv4Prefix   = 24
	DefaultRRLIPv6Prefix   = 56
)

// RRLConfig configures response rate limiting (RRL), the defence against
// being used as an amplifier with spoofed source addresses. Limits apply
// to UDP answers only (TCP proves the source address) and count per
// client network (ClientIPv4Prefix / ClientIPv6Prefix).
type RRLConfig struct {
	// ResponseRate is the identical responses (same name, type and
	// response code) per second one client network may receive; zero
	// means DefaultRRLResponseRate; negative turns the limit off.
	ResponseRate float64
	// ResponseBurst is the bucket size of ResponseRate; zero means twice
	// the rate (at least 1).
	ResponseBurst int
	// ClientRate is the responses per second (of any kind) one client
	// network may receive; zero turns the limit off (the default: a
	// municipality's NAT gateway is one address for many terminals).
	ClientRate float64
	// ClientBurst is the bucket size of ClientRate; zero means twice the
	// rate.
	ClientBurst int
	// Slip is how often a limited response is sent truncated (TC=1,
	// empty) instead of being dropped, so that a real client retries over
	// TCP: every Slip-th limited response slips. Zero means DefaultRRLSlip;
	// 1 slips every one; negative drops every one.
	Slip int
	// ClientIPv4Prefix and ClientIPv6Prefix are the network sizes counted
	// as one client; zero means /24 and /56.
	ClientIPv4Prefix, ClientIPv6Prefix int
	// MaxKeys bounds the buckets remembered per limit (see
	// ratelimit.KeyedConfig.MaxKeys); zero means its default.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RRLDecision is what RRL decided for one response.
type RRLDecision uint8

// RRL decisions.
const (
	RRLSend RRLDecision = iota // within the limits
	RRLSlip                    // limited: send TC=1 with no records
	RRLDrop                    // limited: send nothing
)

// RRL is a response rate limiter; set it as ServerConfig.RRL. Safe for
// concurrent use.
type RRL struct {
	cfg      RRLConfig
	resp     *ratelimit.Keyed[rrlKey]
	client   *ratelimit.Keyed[netip.Prefix]
	seed     maphash.Seed
	limited  atomic.Uint64
	slipped  atomic.Uint64
	v4, v6   int
	slipEach uint64
}

type rrlKey struct {
	net netip.Prefix
	h   uint64
}

// NewRRL validates cfg and returns an RRL.
func NewRRL(cfg RRLConfig) (*RRL, error) {
	if cfg.ResponseRate == 0 {
		cfg.ResponseRate = DefaultRRLResponseRate
	}
	if cfg.ClientRate < 0 {
		return nil, errors.New("dnsres: RRLConfig.ClientRate is negative")
	}
	if cfg.Slip == 0 {
		cfg.Slip = DefaultRRLSlip
	}
	if cfg.ClientIPv4Prefix == 0 {
		cfg.ClientIPv4Prefix = DefaultRRLIPv4Prefix
	}
	if cfg.ClientIPv6Prefix == 0 {
		cfg.ClientIPv6Prefix = DefaultRRLIPv6Prefix
	}
	if cfg.ClientIPv4Prefix < 0 || cfg.ClientIPv4Prefix > 32 || cfg.ClientIPv6Prefix < 0 || cfg.ClientIPv6Prefix > 128 {
		return nil, errors.New("dnsres: RRLConfig client prefix lengths must be within 0..32 and 0..128")
	}
	l := &RRL{cfg: cfg, seed: maphash.MakeSeed(), v4: cfg.ClientIPv4Prefix, v6: cfg.ClientIPv6Prefix}
	if cfg.Slip > 0 {
		l.slipEach = uint64(cfg.Slip)
	}
	var err error
	if cfg.ResponseRate > 0 {
		burst := cfg.ResponseBurst
		if burst == 0 {
			burst = max(1, int(2*cfg.ResponseRate))
		}
		if l.resp, err = ratelimit.NewKeyed[rrlKey](ratelimit.KeyedConfig{Rate: cfg.ResponseRate, Burst: burst, MaxKeys: cfg.MaxKeys, Now: cfg.Now}); err != nil {
			return nil, errors.Join(errors.New("dnsres: RRLConfig.ResponseRate"), err)
		}
	}
	if cfg.ClientRate > 0 {
		burst := cfg.ClientBurst
		if burst == 0 {
			burst = max(1, int(2*cfg.ClientRate))
		}
		if l.client, err = ratelimit.NewKeyed[netip.Prefix](ratelimit.KeyedConfig{Rate: cfg.ClientRate, Burst: burst, MaxKeys: cfg.MaxKeys, Now: cfg.Now}); err != nil {
			return nil, errors.Join(errors.New("dnsres: RRLConfig.ClientRate"), err)
		}
	}
	if cfg.Now == nil {
		l.cfg.Now = time.Now
	}
	return l, nil
}

// Check decides for one UDP response to client: question name (wire
// form), type and response code.
func (l *RRL) Check(client netip.Addr, name []byte, qtype uint16, rcode int) RRLDecision {
	client = client.Unmap()
	bits := l.v6
	if client.Is4() {
		bits = l.v4
	}
	pfx, err := client.Prefix(bits)
	if err != nil {
		return RRLSend
	}
	now := l.cfg.Now()
	ok := true
	if l.client != nil && !l.client.AllowN(now, pfx, 1) {
		ok = false
	}
	if ok && l.resp != nil {
		var h maphash.Hash
		h.SetSeed(l.seed)
		_, _ = h.Write(name)
		_ = h.WriteByte(byte(qtype >> 8))
		_ = h.WriteByte(byte(qtype))
		_ = h.WriteByte(byte(rcode))
		ok = l.resp.AllowN(now, rrlKey{pfx, h.Sum64()}, 1)
	}
	if ok {
		return RRLSend
	}
	n := l.limited.Add(1)
	if l.slipEach > 0 && n%l.slipEach == 0 {
		l.slipped.Add(1)
		return RRLSlip
	}
	return RRLDrop
}

// RRLStats are counters of an RRL.
type RRLStats struct {
	// Limited counts responses over a limit; Slipped those of them sent
	// truncated (the rest were dropped).
	Limited, Slipped uint64
}

// Stats returns the counters.
func (l *RRL) Stats() RRLStats {
	return RRLStats{Limited: l.limited.Load(), Slipped: l.slipped.Load()}
}

// slipResponse writes into out a truncated form of response b: its
// header with TC=1 and no records but the question, which ends at qend.
func slipResponse(out, b []byte, qend int) []byte {
	if qend > len(b) || qend < 12 {
		qend = 12
	}
	out = append(out[:0], b[:qend]...)
	out[2] |= 0x02 // TC
	for i := 6; i < 12; i++ {
		out[i] = 0
	}
	if qend == 12 {
		out[4], out[5] = 0, 0
	}
	return out
}
