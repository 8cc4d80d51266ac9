package detect

import "fmt"

// Severity (危険度) is judged from the investigation — the impact on the
// target and whether the attack succeeded — never copied from a signature.
// Levels 2 and 3 must always be told apart. The zero value is SeverityNone.
type Severity uint8

// The four levels of DESIGN.md.
const (
	// SeverityNone (0): no impact, e.g. scans or attacks on things that do
	// not exist.
	SeverityNone Severity = 0
	// SeverityStopped (1): an attack was attempted and stopped (blocked,
	// quarantined).
	SeverityStopped Severity = 1
	// SeverityReached (2): the attack reached its target; success is
	// unknown and the SOC must confirm it.
	SeverityReached Severity = 2
	// SeveritySucceeded (3): the attack succeeded or very likely succeeded;
	// a serious incident that must be notified within 15 minutes.
	SeveritySucceeded Severity = 3
)

// MaxSeverity is the highest level.
const MaxSeverity = SeveritySucceeded

var severityNames = [...]string{"none", "stopped", "reached", "succeeded"}

var severityJA = [...]string{"影響なし", "攻撃を防御", "攻撃が到達（成否確認中）", "攻撃が成功（または成功の可能性大）"}

// String returns the English short name, e.g. "reached".
func (s Severity) String() string {
	if int(s) < len(severityNames) {
		return severityNames[s]
	}
	return fmt.Sprintf("severity(%d)", uint8(s))
}

// Japanese returns the Japanese description shown to municipal contacts.
func (s Severity) Japanese() string {
	if int(s) < len(severityJA) {
		return severityJA[s]
	}
	return fmt.Sprintf("危険度%d", uint8(s))
}

// Valid reports whether s is one of the four levels.
func (s Severity) Valid() bool { return s <= MaxSeverity }
