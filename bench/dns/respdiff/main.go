// Command respdiff asks two resolvers the same questions and compares
// their answers the way respdiff does: same response code, same answer
// RRsets (owner, type, data; TTLs and order ignored), same kind of
// authority section (SOA for negative answers), same AA/TC flags. It
// prints a summary and the differences, grouped by kind.
//
//	respdiff -a 127.0.0.1:15354 -b 127.0.0.1:15355 -q queries.txt
//
// queries.txt has one "name TYPE" a line (dnsperf's format). Loopback
// only: the addresses are whatever the caller gives.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

func main() {
	a := flag.String("a", "127.0.0.1:15354", "reference resolver (e.g. Unbound)")
	b := flag.String("b", "127.0.0.1:15355", "resolver under test (dnsres)")
	qf := flag.String("q", "", "query file: one \"name TYPE\" a line")
	conc := flag.Int("c", 16, "queries in flight")
	show := flag.Int("show", 10, "differences shown per kind")
	flag.Parse()
	qs, err := readQueries(*qf)
	if err != nil {
		log.Fatal(err)
	}
	type result struct {
		q    dns.Question
		kind string
		a, b string
	}
	results := make([]result, len(qs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range *conc {
		wg.Go(func() {
			ca := &dns.Client{Net: "udp", Timeout: 3 * time.Second, UDPSize: 1232}
			for i := range next {
				q := qs[i]
				ra, ea := ask(ca, *a, q)
				rb, eb := ask(ca, *b, q)
				kind, da, db := compare(ra, ea, rb, eb)
				results[i] = result{q: q, kind: kind, a: da, b: db}
			}
		})
	}
	for i := range qs {
		next <- i
	}
	close(next)
	wg.Wait()

	byKind := map[string][]result{}
	same := 0
	for _, r := range results {
		if r.kind == "" {
			same++
			continue
		}
		byKind[r.kind] = append(byKind[r.kind], r)
	}
	fmt.Printf("respdiff: %d questions, %d identical (%.2f%%), %d different\n", len(qs), same,
		100*float64(same)/float64(max(1, len(qs))), len(qs)-same)
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		rs := byKind[k]
		fmt.Printf("  %s: %d\n", k, len(rs))
		for _, r := range rs[:min(len(rs), *show)] {
			fmt.Printf("    %s %s\n      a: %s\n      b: %s\n", r.q.Name, dns.TypeToString[r.q.Qtype], r.a, r.b)
		}
	}
}

func readQueries(path string) ([]dns.Question, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var qs []dns.Question
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		t, ok := dns.StringToType[strings.ToUpper(fields[1])]
		if !ok {
			return nil, fmt.Errorf("%s: unknown type %q", path, fields[1])
		}
		qs = append(qs, dns.Question{Name: dns.Fqdn(fields[0]), Qtype: t, Qclass: dns.ClassINET})
	}
	return qs, sc.Err()
}

func ask(c *dns.Client, server string, q dns.Question) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.Question = []dns.Question{q}
	m.RecursionDesired = true
	m.SetEdns0(1232, false)
	var r *dns.Msg
	var err error
	for try := 0; try < 3; try++ {
		if r, _, err = c.Exchange(m, server); err == nil {
			break
		}
	}
	if err == nil && r.Truncated {
		tc := &dns.Client{Net: "tcp", Timeout: c.Timeout}
		r, _, err = tc.Exchange(m, server)
	}
	return r, err
}

// rrset renders a section as sorted "owner type data" lines, TTLs and
// OPT left out.
func rrset(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		h := rr.Header()
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		c := dns.Copy(rr)
		c.Header().Ttl = 0
		c.Header().Name = strings.ToLower(h.Name)
		out = append(out, c.String())
	}
	slices.Sort(out)
	return strings.Join(out, " | ")
}

func authKind(m *dns.Msg) string {
	for _, rr := range m.Ns {
		if rr.Header().Rrtype == dns.TypeSOA {
			return "SOA " + strings.ToLower(rr.Header().Name)
		}
	}
	if len(m.Ns) > 0 {
		return "other"
	}
	return "none"
}

// compare returns "" when a and b agree, else the kind of difference and
// what each said.
func compare(a *dns.Msg, ea error, b *dns.Msg, eb error) (string, string, string) {
	switch {
	case ea != nil && eb != nil:
		return "both failed", ea.Error(), eb.Error()
	case ea != nil || eb != nil:
		sa, sb := "ok", "ok"
		if ea != nil {
			sa = ea.Error()
		}
		if eb != nil {
			sb = eb.Error()
		}
		return "one failed", sa, sb
	}
	if a.Rcode != b.Rcode {
		return "rcode", dns.RcodeToString[a.Rcode], dns.RcodeToString[b.Rcode]
	}
	if x, y := rrset(a.Answer), rrset(b.Answer); x != y {
		return "answer", x, y
	}
	if x, y := authKind(a), authKind(b); x != y {
		return "authority", x, y
	}
	if a.Authoritative != b.Authoritative {
		return "flag AA", fmt.Sprint(a.Authoritative), fmt.Sprint(b.Authoritative)
	}
	return "", "", ""
}
