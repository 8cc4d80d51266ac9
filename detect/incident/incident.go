package incident

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/detect/judge"
)

// State is where an incident is in its lifecycle:
//
//	open → notified → acknowledged → resolved | false_positive
//
// An open or notified incident may also be acknowledged directly (a phone
// call), and any incident not yet closed may be resolved or marked a false
// positive.
type State string

// The states.
const (
	StateOpen          State = "open"
	StateNotified      State = "notified"
	StateAcknowledged  State = "acknowledged"
	StateResolved      State = "resolved"
	StateFalsePositive State = "false_positive"
)

// Closed reports whether the incident is finished (resolved or false
// positive): new alerts then open a new incident.
func (s State) Closed() bool { return s == StateResolved || s == StateFalsePositive }

// Japanese returns the state's Japanese label.
func (s State) Japanese() string {
	switch s {
	case StateOpen:
		return "未通知"
	case StateNotified:
		return "通知済み"
	case StateAcknowledged:
		return "受領確認済み"
	case StateResolved:
		return "対応完了"
	case StateFalsePositive:
		return "誤検知"
	}
	return string(s)
}

// Entry kinds of the timeline.
const (
	KindOpened         = "opened"          // incident opened (Severity, Evidence)
	KindEvents         = "events"          // more events grouped in (Text: count)
	KindSeverity       = "severity"        // severity re-judged upwards (Severity, Evidence)
	KindState          = "state"           // state set by an operator (State, By, Text)
	KindNotify         = "notify"          // a notification was delivered (Step, Channel, To)
	KindNotifyFailed   = "notify_failed"   // a delivery failed (Step, Channel, To, Text: error)
	KindAck            = "ack"             // receipt confirmed (By, Channel: "link" or "phone", Token)
	KindAckRefused     = "ack_refused"     // a forged, reused or expired token (Text: why)
	KindDeadlineMissed = "deadline_missed" // not acknowledged within the deadline
	KindNote           = "note"            // a note (By, Text)
	KindAssign         = "assign"          // assignee set (By: who assigned, To: assignee)
)

// Entry is one line of an incident's timeline: events grouped in,
// notifications, acknowledgements and responses (the monthly report's
// contact and response history).
type Entry struct {
	Time     time.Time        `json:"time"`
	Kind     string           `json:"kind"`
	Severity detect.Severity  `json:"severity,omitempty"`
	State    State            `json:"state,omitempty"`
	Step     int              `json:"step,omitempty"`
	Channel  string           `json:"channel,omitempty"`
	To       string           `json:"to,omitempty"`
	By       string           `json:"by,omitempty"`
	Token    string           `json:"token,omitempty"`
	Text     string           `json:"text,omitempty"`
	Evidence []judge.Evidence `json:"evidence,omitempty"`
}

// Step is one rung of a notification ladder, snapshotted when the incident
// opens: contact Contact is reached on Channel at Address, After the clock
// started (the judgement of level 3).
type Step struct {
	Contact string        `json:"contact"`
	Channel string        `json:"channel"` // "email" or "webhook"
	Address string        `json:"address"`
	After   time.Duration `json:"after"`
}

// Incident is a group of alerts of one rule for one tenant and terminal,
// with its judged severity, lifecycle state and timeline. Values returned by
// the Manager are copies: modifying them changes nothing.
type Incident struct {
	ID        string            `json:"id"`
	Tenant    string            `json:"tenant"`
	Terminal  string            `json:"terminal,omitempty"`
	Rule      string            `json:"rule"`
	RuleTitle string            `json:"rule_title,omitempty"`
	Group     map[string]string `json:"group,omitempty"`
	Severity  detect.Severity   `json:"severity"`
	// Evidence explains the current severity.
	Evidence []judge.Evidence `json:"evidence"`
	// Host is the attacked host used for the vulnerability lookup.
	Host  string `json:"host,omitempty"`
	State State  `json:"state"`
	// Count is how many events the incident stands for.
	Count int `json:"count"`
	// First and Last are the times of the first and last event.
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// Opened is when the incident was opened; JudgedAt when it was judged
	// at its current severity (the 15-minute clock starts there).
	Opened   time.Time `json:"opened"`
	JudgedAt time.Time `json:"judged_at"`
	Assignee string    `json:"assignee,omitempty"`
	// Events is a sample of the events: the first MaxEvents.
	Events   []detect.Event `json:"events"`
	Timeline []Entry        `json:"timeline"`
	// Ladder is the notification ladder snapshotted at open.
	Ladder []Step `json:"ladder,omitempty"`
}

func (inc *Incident) clone() Incident {
	c := *inc
	c.Group = maps.Clone(inc.Group)
	c.Evidence = slices.Clone(inc.Evidence)
	c.Events = slices.Clone(inc.Events)
	c.Timeline = slices.Clone(inc.Timeline)
	c.Ladder = slices.Clone(inc.Ladder)
	return c
}

// Errors of the Manager.
var (
	ErrNotFound   = errors.New("incident: no such incident")
	ErrTransition = errors.New("incident: transition not allowed")
	ErrClosed     = errors.New("incident: manager closed")
)

// canTransition reports whether an operator may move from a to b.
func canTransition(a, b State) bool {
	if a.Closed() {
		return false
	}
	switch b {
	case StateAcknowledged:
		return a == StateOpen || a == StateNotified
	case StateResolved, StateFalsePositive:
		return true
	case StateNotified:
		return a == StateOpen
	}
	return false
}

// apply changes inc by one timeline entry. Replay and live updates share it,
// so the state after a restart is the state before.
func (inc *Incident) apply(e Entry) {
	inc.Timeline = append(inc.Timeline, e)
	switch e.Kind {
	case KindOpened:
		inc.Severity, inc.Evidence, inc.JudgedAt = e.Severity, e.Evidence, e.Time
	case KindSeverity:
		inc.Severity, inc.Evidence, inc.JudgedAt = e.Severity, e.Evidence, e.Time
		if inc.State == StateAcknowledged || inc.State == StateNotified {
			inc.State = StateOpen // a raised severity is notified afresh
		}
	case KindState:
		inc.State = e.State
	case KindNotify:
		if inc.State == StateOpen {
			inc.State = StateNotified
		}
	case KindAck:
		if inc.State == StateOpen || inc.State == StateNotified {
			inc.State = StateAcknowledged
		}
	case KindAssign:
		inc.Assignee = e.To
	}
}

func (inc *Incident) String() string {
	return fmt.Sprintf("%s %s/%s %s level %d %s ×%d", inc.ID, inc.Tenant, inc.Terminal, inc.Rule, inc.Severity, inc.State, inc.Count)
}
