package spf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// suiteDir is the RFC 7208 test suite shipped beside the project.
const suiteDir = "../../../../shared/testdata/spf-rfc7208"

type scenario struct {
	Description string                 `yaml:"description"`
	Tests       map[string]suiteTest   `yaml:"tests"`
	Zonedata    map[string][]yaml.Node `yaml:"zonedata"`
}

type suiteTest struct {
	Helo        string    `yaml:"helo"`
	Host        string    `yaml:"host"`
	Mailfrom    string    `yaml:"mailfrom"`
	Result      yaml.Node `yaml:"result"`
	Explanation string    `yaml:"explanation"`
}

type rr struct {
	typ string
	val []string
}

// zone is a fake resolver serving a scenario's zonedata.
type zone struct {
	names   map[string][]rr
	timeout map[string]bool
}

func notFound(name string) error {
	return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
func timeout(name string) error { return &net.DNSError{Err: "timeout", Name: name, IsTimeout: true} }

func norm(n string) string { return strings.ToLower(strings.TrimSuffix(n, ".")) }

func (z *zone) get(name, typ string) ([]rr, error) {
	name = norm(name)
	for hops := 0; hops < 8; hops++ {
		recs, ok := z.names[name]
		if !ok {
			return nil, notFound(name)
		}
		var out []rr
		var cname string
		for _, r := range recs {
			if r.typ == typ {
				out = append(out, r)
			}
			if r.typ == "CNAME" {
				cname = r.val[0]
			}
		}
		if len(out) == 1 && out[0].typ == "TXT" && len(out[0].val) == 1 && out[0].val[0] == "NONE" {
			out = nil
		}
		if len(out) == 0 && z.timeout[name] {
			return nil, timeout(name)
		}
		if len(out) > 0 || cname == "" {
			if len(out) == 0 {
				return nil, notFound(name)
			}
			return out, nil
		}
		name = norm(cname)
	}
	return nil, timeout(name)
}

func (z *zone) LookupTXT(_ context.Context, name string) ([]string, error) {
	recs, err := z.get(name, "TXT")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		out = append(out, strings.Join(r.val, ""))
	}
	return out, nil
}

func (z *zone) LookupIP(_ context.Context, network, host string) ([]net.IP, error) {
	typ := "A"
	if network == "ip6" {
		typ = "AAAA"
	}
	recs, err := z.get(host, typ)
	if err != nil {
		return nil, err
	}
	var out []net.IP
	for _, r := range recs {
		out = append(out, net.ParseIP(r.val[0]))
	}
	return out, nil
}

func (z *zone) LookupMX(_ context.Context, name string) ([]*net.MX, error) {
	recs, err := z.get(name, "MX")
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, r := range recs {
		var pref uint16
		fmt.Sscan(r.val[0], &pref)
		out = append(out, &net.MX{Host: r.val[1], Pref: pref})
	}
	return out, nil
}

func (z *zone) LookupAddr(_ context.Context, addr string) ([]string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	var name string
	if a.Is4() {
		b := a.As4()
		name = fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
	} else {
		b := a.As16()
		var parts []string
		for i := 15; i >= 0; i-- {
			parts = append(parts, fmt.Sprintf("%x.%x", b[i]&15, b[i]>>4))
		}
		name = strings.Join(parts, ".") + ".ip6.arpa"
	}
	recs, err := z.get(name, "PTR")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		out = append(out, r.val[0])
	}
	return out, nil
}

func buildZone(t *testing.T, data map[string][]yaml.Node) *zone {
	z := &zone{names: map[string][]rr{}, timeout: map[string]bool{}}
	for name, items := range data {
		n := norm(name)
		z.names[n] = z.names[n][:0:0]
		hasTXT := false
		var spf []rr
		for _, it := range items {
			if it.Kind == yaml.ScalarNode && it.Value == "TIMEOUT" {
				z.timeout[n] = true
				continue
			}
			require.Equal(t, yaml.MappingNode, it.Kind, "zone item of %s", name)
			typ := it.Content[0].Value
			v := it.Content[1]
			var vals []string
			if v.Kind == yaml.SequenceNode {
				for _, c := range v.Content {
					vals = append(vals, c.Value)
				}
			} else {
				vals = []string{v.Value}
			}
			r := rr{typ: typ, val: vals}
			switch typ {
			case "TXT":
				hasTXT = true
			case "SPF":
				spf = append(spf, rr{typ: "TXT", val: vals})
			}
			z.names[n] = append(z.names[n], r)
		}
		if !hasTXT {
			z.names[n] = append(z.names[n], spf...)
		}
	}
	return z
}

// skipped lists suite cases not run, with the reason (documented in the
// README).
var skipped = map[string]string{}

func TestRFC7208Suite(t *testing.T) {
	f, err := os.Open(suiteDir + "/rfc7208-tests.yml")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("RFC 7208 suite not found at " + suiteDir)
	}
	require.NoError(t, err)
	defer f.Close()
	dec := yaml.NewDecoder(f)
	total, passed := 0, 0
	for {
		var sc scenario
		err := dec.Decode(&sc)
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		if sc.Tests == nil {
			continue
		}
		z := buildZone(t, sc.Zonedata)
		ids := make([]string, 0, len(sc.Tests))
		for id := range sc.Tests {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			tc := sc.Tests[id]
			t.Run(id, func(t *testing.T) {
				if why, ok := skipped[id]; ok {
					t.Skip(why)
				}
				total++
				var want []string
				if tc.Result.Kind == yaml.SequenceNode {
					for _, c := range tc.Result.Content {
						want = append(want, c.Value)
					}
				} else {
					want = []string{tc.Result.Value}
				}
				ip, err := netip.ParseAddr(tc.Host)
				require.NoError(t, err)
				c := &Checker{Resolver: z, DefaultExplanation: "DEFAULT", Hostname: "unknown"}
				got, exp := c.Check(context.Background(), ip, tc.Helo, tc.Mailfrom)
				if assert.Contains(t, want, string(got), "%s: %s", sc.Description, id) {
					if tc.Explanation != "" && got == Fail {
						assert.Equal(t, tc.Explanation, exp)
					}
					passed++
				}
			})
		}
	}
	t.Logf("RFC 7208 suite: %d/%d passed", passed, total)
}
