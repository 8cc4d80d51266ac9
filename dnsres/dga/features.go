package dga

import (
	"math"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Alphabet of the n-gram model: a–z, 0–9, '-', and the label boundary.
const (
	alphaSize = 38
	boundary  = 37
)

// charIndex maps a byte to its model index, or -1 for bytes outside
// a–z, 0–9, '-' (upper case is folded).
func charIndex(c byte) int {
	switch {
	case c >= 'a' && c <= 'z':
		return int(c - 'a')
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= '0' && c <= '9':
		return 26 + int(c-'0')
	case c == '-':
		return 36
	}
	return -1
}

// dynDNS are dynamic-DNS and free-subdomain suffixes: the label below
// them is the name the owner chose, so it is the one scored. Some are in
// the public suffix list already; the rest are listed here.
var dynDNS = map[string]bool{
	"ddns.net": true, "no-ip.biz": true, "no-ip.org": true, "no-ip.info": true, "dyndns.org": true,
	"duckdns.org": true, "hopto.org": true, "zapto.org": true, "servebeer.com": true, "mooo.com": true,
	"yi.org": true, "dynserv.com": true, "3utilities.com": true, "sytes.net": true, "myftp.biz": true,
	"serveftp.com": true, "changeip.com": true, "afraid.org": true, "dynu.net": true, "ddns.me": true,
	"co.cc": true, "cz.cc": true,
}

// Split returns the label a DGA would have chosen — the one just left of
// the public suffix (or of a dynamic-DNS suffix) — and the registered
// domain it belongs to, for a lower-case name without the trailing dot.
// ok is false when the name is a public suffix itself or has no label.
func Split(name string) (label, registered string, ok bool) {
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", "", false
	}
	suffix, _ := publicsuffix.PublicSuffix(name)
	// A dynamic-DNS suffix ending the name replaces the public suffix.
	for i := 0; i < len(name); i++ {
		if (i == 0 || name[i-1] == '.') && len(name)-i > len(suffix) && dynDNS[name[i:]] {
			suffix = name[i:]
			break
		}
	}
	if len(name) <= len(suffix) {
		return "", "", false
	}
	rest := name[:len(name)-len(suffix)-1]
	start := strings.LastIndexByte(rest, '.') + 1
	return rest[start:], name[start:], true
}

// NumFeatures is the length of a feature vector.
const NumFeatures = 16

// FeatureNames names the features, in order (for the model file and the
// training report).
var FeatureNames = [NumFeatures]string{
	"ngram_bits", "length", "log_length", "digit_frac", "hyphens", "vowel_frac",
	"max_consonant_run", "entropy", "unique_frac", "word_coverage", "words",
	"hex_only", "rare_trigram_frac", "digit_switches", "dict_compound", "max_surprise",
}

// features computes the feature vector of label (lower-case a–z, 0–9,
// '-'; other bytes are skipped) into f.
func (m *Model) features(label string, f *[NumFeatures]float64) {
	*f = [NumFeatures]float64{}
	var idx [64]int
	n := 0
	for i := 0; i < len(label) && n < len(idx); i++ {
		if c := charIndex(label[i]); c >= 0 {
			idx[n] = c
			n++
		}
	}
	if n == 0 {
		return
	}
	// Trigram surprisal, boundaries included.
	var bits, maxBits float64
	rare := 0
	a, b := boundary, boundary
	for i := 0; i <= n; i++ {
		c := boundary
		if i < n {
			c = idx[i]
		}
		s := m.surprise(a, b, c)
		bits += s
		maxBits = max(maxBits, s)
		if s > rareBits {
			rare++
		}
		a, b = b, c
	}
	var counts [alphaSize]int
	digits, hyphens, vowelsN, lettersN, run, maxRun, switches := 0, 0, 0, 0, 0, 0, 0
	hexOnly := true
	prevDigit := false
	for i := range n {
		c := idx[i]
		counts[c]++
		isDigit := c >= 26 && c < 36
		switch {
		case isDigit:
			digits++
		case c == 36:
			hyphens++
		default:
			lettersN++
			if strings.IndexByte("aeiou", byte('a'+c)) >= 0 {
				vowelsN++
				run = 0
			} else if c != 'y'-'a' {
				run++
				maxRun = max(maxRun, run)
			}
		}
		if isDigit || c == 36 {
			run = 0
		}
		if !(isDigit || c < 6) {
			hexOnly = false
		}
		if i > 0 && isDigit != prevDigit {
			switches++
		}
		prevDigit = isDigit
	}
	var ent float64
	uniq := 0
	for _, k := range counts {
		if k > 0 {
			uniq++
			p := float64(k) / float64(n)
			ent -= p * math.Log2(p)
		}
	}
	cov, words := m.segment(label)
	fn := float64(n)
	f[0] = bits / float64(n+1)
	f[1] = fn
	f[2] = math.Log(fn)
	f[3] = float64(digits) / fn
	f[4] = float64(hyphens)
	if lettersN > 0 {
		f[5] = float64(vowelsN) / float64(lettersN)
	}
	f[6] = float64(maxRun)
	f[7] = ent
	f[8] = float64(uniq) / fn
	f[9] = cov
	f[10] = float64(words)
	if hexOnly && n >= 8 && digits > 0 {
		f[11] = 1
	}
	f[12] = float64(rare) / float64(n+1)
	f[13] = float64(switches) / fn
	if cov == 1 && words >= 2 && words <= 3 && n >= 10 {
		f[14] = 1
	}
	f[15] = maxBits
}

// rareBits is the surprisal (bits) above which a trigram counts as rare.
const rareBits = 9

// surprise returns −log2 P(c | a b) from the quantised table.
func (m *Model) surprise(a, b, c int) float64 {
	return float64(m.tri[(a*alphaSize+b)*alphaSize+c]) / triScale
}

// segment covers label with dictionary words of 3+ letters (digits and
// hyphens are separators), minimising uncovered letters then words, and
// returns the covered fraction of the letters and the number of words.
func (m *Model) segment(label string) (coverage float64, words int) {
	n := len(label)
	if n == 0 || n > 63 || len(m.words) == 0 {
		return 0, 0
	}
	// cost[i] for label[:i]: uncovered*64 + words.
	var cost [64]int
	var nw [64]int
	letters := 0
	for i := 1; i <= n; i++ {
		c := label[i-1]
		isLetter := c >= 'a' && c <= 'z'
		if isLetter {
			letters++
			cost[i], nw[i] = cost[i-1]+64, nw[i-1]
		} else {
			cost[i], nw[i] = cost[i-1], nw[i-1]
		}
		for l := 3; l <= maxWord && l <= i; l++ {
			if _, ok := m.words[label[i-l:i]]; ok {
				if c := cost[i-l] + 1; c < cost[i] {
					cost[i], nw[i] = c, nw[i-l]+1
				}
			}
		}
	}
	if letters == 0 {
		return 0, 0
	}
	uncovered := cost[n] / 64
	return float64(letters-uncovered) / float64(letters), nw[n]
}

// maxWord is the longest dictionary word used for segmentation.
const maxWord = 12

// Features returns the feature vector m computes for label (for training
// tools and tests).
func Features(m *Model, label string) []float64 {
	var f [NumFeatures]float64
	m.features(label, &f)
	return f[:]
}
