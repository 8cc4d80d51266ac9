package detect

import (
	"fmt"
	"strings"
)

// Action is what a policy decided to do with a unit of work.
type Action uint8

// The actions. The zero value is ActionNone: no decision was taken (e.g. a
// plain log event). Report means "would block, but the policy runs in
// report-only mode": the traffic passes and the event says what would have
// happened.
const (
	ActionNone       Action = iota
	ActionAllow             // passed after inspection
	ActionReport            // would have been blocked; report-only mode
	ActionBlock             // refused (HTTP 403, SMTP 5xx, DNS REFUSED, ...)
	ActionQuarantine        // kept aside (mail) for review
	ActionSinkhole          // answered with a sinkhole address (DNS)
	ActionDrop              // silently dropped (DDoS, rate limit)
	ActionRedirect          // sent elsewhere (e.g. HTTP → HTTPS, breakout)
	ActionBypass            // exempted from inspection (e.g. TLS bypass list)
	ActionDelete            // removed (a virus-infected mail)
	ActionTempFail          // deferred; the client will retry (SMTP 4xx)
	actionCount
)

var actionNames = [actionCount]string{
	"none", "allow", "report", "block", "quarantine", "sinkhole", "drop",
	"redirect", "bypass", "delete", "tempfail",
}

// String returns the lower-case name of a, e.g. "block". Unknown values give
// "action(N)".
func (a Action) String() string {
	if a < actionCount {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// ParseAction returns the Action named s (case-insensitive).
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if strings.EqualFold(n, s) {
			return Action(i), nil
		}
	}
	return ActionNone, fmt.Errorf("detect: unknown action %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Action) MarshalText() ([]byte, error) {
	if a >= actionCount {
		return nil, fmt.Errorf("detect: invalid action %d", uint8(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (a *Action) UnmarshalText(b []byte) error {
	v, err := ParseAction(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Stopped reports whether the action kept the traffic from its target
// (block, quarantine, sinkhole, drop, delete, tempfail).
func (a Action) Stopped() bool {
	switch a {
	case ActionBlock, ActionQuarantine, ActionSinkhole, ActionDrop, ActionDelete, ActionTempFail:
		return true
	}
	return false
}

// Verdict is a policy's decision: a plain value, so deciders stay testable
// and events carry exactly what was decided. The zero Verdict is "no
// decision".
type Verdict struct {
	// Action is what to do.
	Action Action
	// Rule is the id of the rule that decided (rule.id), e.g. "crs-942100"
	// or "intel-domain".
	Rule string
	// RuleName is a short human name of the rule (rule.name).
	RuleName string
	// Reason explains the decision in a sentence (event.reason).
	Reason string
	// Score is an anomaly or spam score (event.risk_score); 0 when the
	// decider does not score.
	Score int
}
