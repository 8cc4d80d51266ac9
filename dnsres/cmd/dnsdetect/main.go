// Command dnsdetect runs the resolver's detection offline, for checking
// it against labelled data.
//
//	dnsdetect -names < names.txt
//
// reads one domain name a line and prints "name<TAB>P(DGA)<TAB>verdict",
// the verdict being dga, benign, allowed (under the allow-list) or
// skipped:<why> (Japanese IDN, short label, public suffix).
//
//	dnsdetect -log < queries.tsv
//
// replays a query log, one query a line: "time client qname qtype
// [rcode]" separated by blanks (time as Unix seconds, fractions allowed,
// or RFC 3339; rcode as NOERROR, NXDOMAIN, … or a number), through
// dnsres.Detector — DGA, tunnelling, NXDOMAIN storms — and prints every
// verdict and window alert as "time client qname rule action score
// reason".
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/jichitai/seccloud/detect"
	"github.com/jichitai/seccloud/dnsres"
	"github.com/jichitai/seccloud/dnsres/dga"
)

func main() {
	names := flag.Bool("names", false, "score names (one a line) for DGA-likeness")
	replay := flag.Bool("log", false, "replay a query log through the Detector")
	thr := flag.Float64("threshold", 0, "P(DGA) threshold; 0 = the model's")
	window := flag.Duration("window", 0, "counting window; 0 = the Detector's default")
	flag.Parse()
	var err error
	switch {
	case *names:
		err = scoreNames(os.Stdin, os.Stdout, *thr)
	case *replay:
		err = replayLog(os.Stdin, os.Stdout, dnsres.DetectorConfig{DGAThreshold: *thr, Window: *window})
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func scoreNames(in io.Reader, out io.Writer, thr float64) error {
	m, err := dga.Default()
	if err != nil {
		return err
	}
	if thr == 0 {
		thr = m.Threshold()
	}
	det, err := dnsres.NewDetector(dnsres.DetectorConfig{Model: m, DGAThreshold: thr, TunnelUnique: -1, NXDomainStorm: -1})
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	defer w.Flush()
	client := netip.MustParseAddrPort("127.0.0.1:53")
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		name := strings.TrimSpace(strings.ToLower(sc.Text()))
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		res := m.Score(name)
		verdict := "benign"
		switch {
		case res.Skipped != "":
			verdict = "skipped:" + res.Skipped
		case res.Score >= thr:
			verdict = "dga"
		}
		if verdict == "dga" {
			// The Detector's allow-list (CDN, cloud) applies on top.
			r, err := dnsres.NewRequest(name, dns.TypeA, client, nil, time.Now())
			if err == nil && det.Check(r).Rule == "" {
				verdict = "allowed"
			}
		}
		fmt.Fprintf(w, "%s\t%.4f\t%s\n", name, res.Score, verdict)
	}
	return sc.Err()
}

type printSink struct{ w io.Writer }

func (s printSink) Emit(e detect.Event) {
	fmt.Fprintf(s.w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", e.Time.UTC().Format(time.RFC3339Nano), e.Terminal, e.DNS.QName,
		e.Verdict.Rule, e.Verdict.Action, e.Verdict.Score, e.Verdict.Reason)
}

func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

func replayLog(in io.Reader, out io.Writer, cfg dnsres.DetectorConfig) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	cfg.Sink = printSink{w}
	det, err := dnsres.NewDetector(cfg)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 4 {
			return fmt.Errorf("line %d: want time client qname qtype [rcode]", line)
		}
		t, err := parseTime(f[0])
		if err != nil {
			return fmt.Errorf("line %d: time: %w", line, err)
		}
		addr, err := netip.ParseAddr(f[1])
		if err != nil {
			return fmt.Errorf("line %d: client: %w", line, err)
		}
		qtype, ok := dns.StringToType[strings.ToUpper(f[3])]
		if !ok {
			return fmt.Errorf("line %d: unknown type %q", line, f[3])
		}
		r, err := dnsres.NewRequest(f[2], qtype, netip.AddrPortFrom(addr, 0), nil, t)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if v := det.Check(r); v.Rule != "" {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", t.UTC().Format(time.RFC3339Nano), addr, r.Name(), v.Rule, v.Action, v.Score, v.Reason)
		}
		if len(f) >= 5 {
			rc, ok := dns.StringToRcode[strings.ToUpper(f[4])]
			if !ok {
				n, err := strconv.Atoi(f[4])
				if err != nil {
					return fmt.Errorf("line %d: unknown rcode %q", line, f[4])
				}
				rc = n
			}
			det.Observe(r, rc)
		}
	}
	return sc.Err()
}
