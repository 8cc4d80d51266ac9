// Package incident turns alerts of the rule engine into incidents: it
// judges each alert (detect/judge), groups alerts of the same tenant,
// terminal and rule within a window into one incident with a count, keeps
// the lifecycle (open → notified → acknowledged → resolved / false
// positive), the assignee, notes and the full timeline of events,
// notifications and acknowledgements, and persists everything durably in an
// append-only JSON-lines journal replayed on start (a torn last line from a
// crash is cut off).
//
//	m, err := incident.Open(incident.Config{Dir: "/var/lib/seccloud/incidents",
//		Judge: &judge.Default{Vuln: inventory}, Ladder: notify.LadderFunc(dir.ByID, nil, 0)})
//	eng := rules.New(rules.Config{Rules: set, Handler: m}) // alerts → incidents
//	m.List(incident.Filter{Active: true})
//	m.SetState(id, incident.StateResolved, "suzuki", "端末を初期化")
package incident
