// Package notify reaches the contacts of serious incidents and confirms
// receipt. Each incident carries an escalation ladder over its tenant's
// contacts, snapshotted when it opened (see [Ladder]); from the judgement of
// level 3 a 15-minute clock runs: the first contact is mailed (SMTP through
// a smarthost, STARTTLS when offered) or posted to (JSON webhook with a
// Slack-compatible "text") at once, the next ones after their delays, until
// someone confirms receipt through the signed link in the message (HMAC-
// SHA256 token, single use, expiring) or the SOC records a phone call.
// Every attempt, failure, acknowledgement and refused token is written to
// the incident's timeline; failed deliveries are retried while the ladder
// goes on. All state lives in the incident journal, so a restart resumes.
//
//	n, err := notify.New(notify.Config{Incidents: m, Key: key32, AckURL: "https://soc.example.jp/ack",
//		Email: &notify.Email{Addr: "smarthost.example.jp:25", From: "soc@example.jp"}})
//	mux.Handle("/ack", n.Handler())   // GET shows a confirm button, POST acknowledges
//	go n.Run(ctx)                      // or n.Step(ctx, now) from tests
//
// Messages are Japanese first (件名: 【重要】セキュリティインシデントのお知らせ…)
// with English below.
package notify
