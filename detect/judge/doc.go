// Package judge decides the severity (危険度) of an alert raised by the rule
// engine, as a separate and explained step: from whether the attack reached
// its target (the verdicts of the deciding events), what came back (success
// evidence declared by the rule) and whether the target is vulnerable —
// never from the signature's own level. Every Judgement carries its evidence
// in Japanese and English.
//
//	j := &judge.Default{Vuln: inventory}          // inventory: a VulnLookup
//	res := j.Judge(judge.FromAlert(alert))        // alert: *rules.Alert
//	// res.Severity (0..3), res.Evidence[i].JA / .EN
//
// See the README for the decision table.
package judge
