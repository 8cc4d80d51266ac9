package rspamd

import (
	"testing"
)

func FuzzParseResult(f *testing.F) {
	f.Add([]byte(`{"is_skipped":false,"score":11.5,"required_score":15.0,"action":"add header","symbols":{"A":{"name":"A","score":10.0,"options":["x"]},"B":{"score":-1}},"messages":{"smtp_message":"x"}}`))
	f.Add([]byte(`{"is_skipped":true,"score":15.0,"action":"reject","messages":["old"]}`))
	f.Add([]byte(`{"error":"bad request"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseResult(b)
		if err != nil {
			return
		}
		if r.Action == "" && !r.Skipped {
			t.Fatal("accepted an answer without an action")
		}
		for i := 1; i < len(r.Symbols); i++ {
			if abs(r.Symbols[i].Score) > abs(r.Symbols[i-1].Score) {
				t.Fatal("symbols not sorted")
			}
		}
	})
}
