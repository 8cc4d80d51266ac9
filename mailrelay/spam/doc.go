// Package spam is seccloud's shared spam filter (one for the whole
// cloud): a statistical text classifier trained on the corpus shipped in
// corpus/, header and structure heuristics, DNS block lists, threat
// intelligence (detect/intel) for URLs and senders, and advertising /
// bulk-mail detection, combined into one score in points.
//
// The classifier is logistic regression over the message's tokens:
// Latin-script words, Japanese (and other CJK) text as character bigrams
// plus whole katakana words, URL hosts and a few header features, after
// decoding MIME (ISO-2022-JP, Shift_JIS, EUC-JP, UTF-8; quoted-printable
// and base64; encoded words) and reducing HTML to text. The default
// model is embedded (model.gz) and rebuilt by `go generate` from corpus/.
//
//	sc, err := spam.New(spam.Config{Zones: []spam.Zone{{Name: "bl.example.net"}}})
//	rep := sc.Score(ctx, spam.Input{Raw: msg, Client: ip, EnvelopeFrom: from})
//	if rep.Score >= 6 { /* quarantine */ }
//
// mailrelay turns the score into per-tenant actions (mailrelay.Levels).
// A Scorer and a Model are safe for concurrent use.
package spam
