package wire_test

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/dnsres/internal/wire"
)

func TestParseQuery(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("WwW.Example.JP.", dns.TypeAAAA)
	m.Id = 4242
	m.CheckingDisabled = true
	m.SetEdns0(4096, true)
	b, err := m.Pack()
	require.NoError(t, err)
	var q wire.Query
	key := make([]byte, wire.MaxKey)
	require.NoError(t, wire.ParseQuery(b, &q, key))
	assert.EqualValues(t, 4242, q.ID)
	assert.Equal(t, "www.example.jp.", wire.NameString(q.Name))
	assert.Equal(t, dns.TypeAAAA, q.Type)
	assert.True(t, q.EDNS)
	assert.True(t, q.DO)
	assert.EqualValues(t, 4096, q.UDPSize)
	assert.Equal(t, byte(3), q.Key[len(q.Key)-1], "DO and CD in the key")
}

func TestNameString(t *testing.T) {
	for _, n := range []string{"a.b.", ".", `a\.b.c.`, `x\ y.`, `\@.`, `\007.`} {
		w := make([]byte, 256)
		off, err := dns.PackDomainName(n, w, 0, nil, false)
		require.NoError(t, err)
		assert.Equal(t, strings.ToLower(n), wire.NameString(w[:off]), n)
	}
}

// FuzzParseQuery checks ParseQuery against miekg/dns: it never panics,
// and whenever it accepts a message, dns.Msg agrees on the question.
func FuzzParseQuery(f *testing.F) {
	m := new(dns.Msg)
	m.SetQuestion("a.example.", dns.TypeA)
	b, _ := m.Pack()
	f.Add(b)
	m.SetEdns0(1232, true)
	b, _ = m.Pack()
	f.Add(b)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var q wire.Query
		key := make([]byte, wire.MaxKey)
		err := wire.ParseQuery(b, &q, key)
		if err != nil {
			return
		}
		m := new(dns.Msg)
		if m.Unpack(b) != nil {
			return // we are more lenient about the rest of the message
		}
		if len(m.Question) != 1 {
			t.Fatalf("accepted %d questions", len(m.Question))
		}
		if got, want := wire.NameString(q.Name), strings.ToLower(m.Question[0].Name); got != want && !strings.Contains(want, `\`) {
			t.Fatalf("name %q, miekg %q", got, want)
		}
		if q.Type != m.Question[0].Qtype {
			t.Fatalf("type %d, miekg %d", q.Type, m.Question[0].Qtype)
		}
		_ = wire.Records(b, func(wire.RR) {})
	})
}
