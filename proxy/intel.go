package proxy

import (
	"context"
	"net/netip"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/intel"
)

// RuleIntel is the rule id of verdicts from IntelDecider.
const RuleIntel = "proxy-intel"

// IntelDecider refuses requests whose destination is a threat-intelligence
// indicator — the host as a domain (with its parents) or as an address, or,
// for plain HTTP, the URL — and passes every other request to Next (nil:
// allowed). A report-only tenant gets ActionReport instead of a block. The
// check is on the requested host; the addresses a name resolves to are
// checked by the Server when Config.Intel is set. Safe for concurrent use; the set is read from Intel at
// each request, so a reload takes effect at once.
type IntelDecider struct {
	// Intel holds the indicators; nil means none.
	Intel *intel.Live
	// Next decides requests that match no indicator; nil allows them.
	Next Decider
}

// Decide implements Decider.
func (d IntelDecider) Decide(ctx context.Context, r Request) (detect.Verdict, error) {
	if d.Intel != nil {
		set := d.Intel.Load()
		var ind *intel.Indicator
		var ok bool
		if a, err := netip.ParseAddr(r.Host); err == nil {
			ind, ok = set.Addr(a)
		} else {
			ind, ok = set.Domain(r.Host)
		}
		if !ok && r.Method != "CONNECT" && r.URL != "" {
			ind, ok = set.URL(r.URL)
		}
		if ok {
			v := detect.Verdict{Action: detect.ActionBlock, Rule: RuleIntel, RuleName: "threat-intelligence " + ind.Kind.String(),
				Reason: r.Host + " matches " + ind.Value + " (" + ind.Source + ")", Score: 100}
			if r.Tenant != nil && r.Tenant.Policy.ReportOnly {
				v.Action = detect.ActionReport
			}
			return v, nil
		}
	}
	if d.Next != nil {
		return d.Next.Decide(ctx, r)
	}
	return detect.Verdict{}, nil
}
