// Package rules is seccloud's rule engine: rules in a documented YAML
// format that is a useful subset of Sigma (detection selections with field
// modifiers and a condition; Sigma v2 correlations event_count, value_count,
// temporal and temporal_ordered with group-by, aliases and timespan), over
// the ECS field names of [detect.Event]. The tenant (organization.id) is
// always part of a correlation's group.
//
// Fields are read straight from the Event (no JSON encoding), string values
// are lower-cased once per event, and rules are indexed by event.module
// through their logsource, so the default rule set takes about a
// microsecond per event on one core (see README).
//
//	set, err := rules.ParseFiles("/etc/seccloud/rules") // or rules.Default()
//	if err != nil { /* rules.Errors: file:line: rule "id": why — keep the old set */ }
//	eng := rules.New(rules.Config{Rules: set, Handler: incidents, Intel: liveIntel})
//	sink, _ := detect.NewAsync(detect.AsyncConfig{Writer: eng}) // the data path never waits
//	...
//	eng.SetRules(newSet) // reload; correlation windows of unchanged rules survive
//
// A rule matches one event; a correlation groups matches of the rules it
// names. Each match or satisfied correlation is an [Alert] handed to the
// [Handler] (the incident manager), which judges severity separately.
package rules
