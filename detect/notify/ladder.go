package notify

import (
	"time"

	"github.com/jichitai/seccloud/detect/incident"
	"github.com/jichitai/seccloud/tenant"
)

// Defaults of the escalation ladder.
const (
	// DefaultDeadline is the time within which a serious incident must be
	// acknowledged (the specification's 15 minutes).
	DefaultDeadline = 15 * time.Minute
	// DefaultEscalateAfter is the default delay before the next contact.
	DefaultEscalateAfter = 4 * time.Minute
)

// Ladder builds the escalation ladder of a tenant's contacts, in their order:
// contact 0 is reached at once on every channel it has (email, webhook),
// contact i+1 delays[i] later (the last delay repeats; no delays means
// DefaultEscalateAfter). Offsets that would not fit inside deadline are
// pulled in so that every contact is reached at least one minute before the
// deadline (several contacts may then share an offset). Contacts with only
// a phone number get no step: the SOC calls them and records the call with
// Notifier.AckPhone.
func Ladder(contacts []tenant.Contact, delays []time.Duration, deadline time.Duration) []incident.Step {
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	last := deadline - time.Minute
	if last < 0 {
		last = 0
	}
	var steps []incident.Step
	var at time.Duration
	for i, c := range contacts {
		if i > 0 {
			d := DefaultEscalateAfter
			if len(delays) > 0 {
				d = delays[min(i-1, len(delays)-1)]
			}
			at += d
		}
		off := min(at, last)
		if c.Email != "" {
			steps = append(steps, incident.Step{Contact: c.Name, Channel: ChannelEmail, Address: c.Email, After: off})
		}
		if c.Webhook != "" {
			steps = append(steps, incident.Step{Contact: c.Name, Channel: ChannelWebhook, Address: c.Webhook, After: off})
		}
	}
	return steps
}

// LadderFunc returns an incident.Config.Ladder that snapshots the ladder of
// the tenant found by lookup (e.g. (*tenant.Snapshot).ByID).
func LadderFunc(lookup func(id string) (*tenant.Tenant, bool), delays []time.Duration, deadline time.Duration) func(string) []incident.Step {
	return func(id string) []incident.Step {
		t, ok := lookup(id)
		if !ok {
			return nil
		}
		return Ladder(t.Contacts, delays, deadline)
	}
}
