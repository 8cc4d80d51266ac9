// Package families generates domain names in the style of well-known
// domain generation algorithm (DGA) families, for training and testing
// the DGA model. Each generator is written for this project from public
// descriptions of the family's output (alphabet, label lengths, top-level
// domains, how words are combined); none reproduces a family's exact
// sequence, only the shape of its names, which is what a name-based
// detector sees.
package families

import (
	"math/rand/v2"
	"strings"
)

// A Family generates names of one DGA style.
type Family struct {
	// Name is the family whose output the generator imitates.
	Name string
	// Kind is "random" (letters or alphanumerics drawn from a PRNG),
	// "hex" (hash digests), "pronounceable" (consonant–vowel syllables)
	// or "dictionary" (concatenated words).
	Kind string
	gen  func(r *rand.Rand, words []string) string
}

// Generate returns n names (with their top-level domain) from a PRNG
// seeded with seed. words is the dictionary the dictionary families draw
// from.
func (f Family) Generate(seed uint64, n int, words []string) []string {
	r := rand.New(rand.NewPCG(seed, 0x5eccd6a))
	out := make([]string, 0, n)
	for len(out) < n {
		out = append(out, f.gen(r, words))
	}
	return out
}

const (
	letters = "abcdefghijklmnopqrstuvwxyz"
	alnum   = "abcdefghijklmnopqrstuvwxyz0123456789"
	hexdig  = "0123456789abcdef"
	vowels  = "aeiou"
	conson  = "bcdfghjklmnpqrstvwxz"
)

func pick(r *rand.Rand, s string) byte { return s[r.IntN(len(s))] }

func pickStr(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

func randLabel(r *rand.Rand, alphabet string, minLen, maxLen int) string {
	n := minLen + r.IntN(maxLen-minLen+1)
	b := make([]byte, n)
	for i := range b {
		b[i] = pick(r, alphabet)
	}
	return string(b)
}

var (
	tldsCommon = []string{"com", "net", "org", "info", "biz"}
	tldsCC     = []string{"com", "net", "org", "info", "biz", "ru", "cn", "ws", "cc", "in", "co.uk", "de", "nl", "eu", "su", "pw", "top", "xyz"}
)

// All is every family, in a fixed order.
var All = []Family{
	{"conficker", "random", func(r *rand.Rand, _ []string) string {
		// 4–10 letters, one of a handful of generic and country TLDs.
		return randLabel(r, letters, 4, 10) + "." + pickStr(r, []string{"com", "net", "org", "info", "biz", "ws", "cn", "cc"})
	}},
	{"cryptolocker", "random", func(r *rand.Rand, _ []string) string {
		// 12–15 letters, each derived from a running seed mixed with the date.
		seed := r.Uint32()
		n := 12 + r.IntN(4)
		b := make([]byte, n)
		for i := range b {
			seed = (seed*1103515245 + 12345) ^ (seed >> 7)
			b[i] = letters[(seed>>16)%26]
		}
		return string(b) + "." + pickStr(r, []string{"com", "net", "biz", "ru", "org", "co.uk", "info"})
	}},
	{"necurs", "random", func(r *rand.Rand, _ []string) string {
		// 7–21 letters from a 64-bit mixing function; many TLDs.
		x := r.Uint64() | 1
		n := 7 + int(x%15)
		b := make([]byte, n)
		for i := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[i] = letters[x%26]
		}
		return string(b) + "." + pickStr(r, tldsCC)
	}},
	{"ramnit", "random", func(r *rand.Rand, _ []string) string {
		// 8–19 letters from a multiply-modulo generator.
		seed := r.Uint32()%0x7fffffff + 1
		n := 8 + int(seed%12)
		b := make([]byte, n)
		for i := range b {
			seed = uint32(uint64(seed) * 16807 % 0x7fffffff)
			b[i] = letters[seed%26]
		}
		return string(b) + ".com"
	}},
	{"qakbot", "random", func(r *rand.Rand, _ []string) string {
		return randLabel(r, letters, 8, 25) + "." + pickStr(r, []string{"com", "net", "org", "info", "biz"})
	}},
	{"tinba", "random", func(r *rand.Rand, _ []string) string {
		return randLabel(r, letters, 12, 12) + "." + pickStr(r, []string{"com", "net", "in", "ru", "biz", "pw", "us", "cc"})
	}},
	{"pykspa", "random", func(r *rand.Rand, _ []string) string {
		// 6–15 letters with a bias to the first half of the alphabet.
		n := 6 + r.IntN(10)
		b := make([]byte, n)
		for i := range b {
			if r.IntN(3) == 0 {
				b[i] = pick(r, letters)
			} else {
				b[i] = letters[r.IntN(13)]
			}
		}
		return string(b) + "." + pickStr(r, []string{"com", "net", "org", "info", "cc"})
	}},
	{"corebot", "random", func(r *rand.Rand, _ []string) string {
		// 12–23 characters of letters and digits.
		return randLabel(r, "abcdefghijklmnopqrstuvwxyz0123456789", 12, 23) + ".ddns.net"
	}},
	{"pushdo", "random", func(r *rand.Rand, _ []string) string {
		// Alphanumeric with digits in runs, 8–14 characters.
		n := 8 + r.IntN(7)
		b := make([]byte, 0, n)
		for len(b) < n {
			if r.IntN(4) == 0 {
				for k := 1 + r.IntN(3); k > 0 && len(b) < n; k-- {
					b = append(b, pick(r, "0123456789"))
				}
			} else {
				b = append(b, pick(r, letters))
			}
		}
		return string(b) + "." + pickStr(r, []string{"com", "kz", "ru"})
	}},
	{"murofet", "hex", func(r *rand.Rand, _ []string) string {
		// A digest rendered as 16–32 hex digits.
		return randLabel(r, hexdig, 16, 32) + "." + pickStr(r, []string{"com", "net", "org", "biz", "info", "ru"})
	}},
	{"bamital", "hex", func(r *rand.Rand, _ []string) string {
		return randLabel(r, hexdig, 32, 32) + "." + pickStr(r, []string{"info", "org", "co.cc", "cz.cc"})
	}},
	{"simda", "pronounceable", func(r *rand.Rand, _ []string) string {
		// Consonant–vowel pairs, 6–11 letters, heavy on rare consonants.
		n := 6 + r.IntN(6)
		b := make([]byte, 0, n)
		for len(b) < n {
			b = append(b, pick(r, "bcdfghjklmnpqrstvwxyz"))
			if len(b) < n {
				b = append(b, pick(r, "aeiouy"))
			}
		}
		return string(b) + "." + pickStr(r, []string{"com", "net", "info", "eu", "biz"})
	}},
	{"symmi", "pronounceable", func(r *rand.Rand, _ []string) string {
		// Syllables of one consonant and one vowel drawn from a table.
		n := 4 + r.IntN(4)
		var sb strings.Builder
		for range n {
			sb.WriteByte(pick(r, conson))
			sb.WriteByte(pick(r, vowels))
		}
		return sb.String() + ".ddns.net"
	}},
	{"suppobox", "dictionary", func(r *rand.Rand, words []string) string {
		// Two English words.
		return pickStr(r, words) + pickStr(r, words) + "." + pickStr(r, []string{"net", "com", "ru"})
	}},
	{"matsnu", "dictionary", func(r *rand.Rand, words []string) string {
		// A verb and nouns, sometimes hyphenated, 12–24 characters.
		var sb strings.Builder
		for sb.Len() < 12 {
			if sb.Len() > 0 && r.IntN(3) == 0 {
				sb.WriteByte('-')
			}
			sb.WriteString(pickStr(r, words))
		}
		s := sb.String()
		if len(s) > 24 {
			s = strings.TrimRight(s[:24], "-")
		}
		return s + ".com"
	}},
	{"gozi", "dictionary", func(r *rand.Rand, words []string) string {
		// Words of a text glued together and cut to 12–23 letters.
		var sb strings.Builder
		n := 12 + r.IntN(12)
		for sb.Len() < n {
			sb.WriteString(pickStr(r, words))
		}
		return sb.String()[:n] + "." + pickStr(r, []string{"com", "ru", "net", "org"})
	}},
	{"banjori", "random", func(r *rand.Rand, _ []string) string {
		// A fixed long base whose first four letters change per day.
		base := pickStr(r, []string{"earnestnessbiophysicalohax", "andersensinaix", "bestsellerpaketdiet", "nicsvirtualizationpxu"})
		b := []byte(base)
		for i := range 4 {
			b[i] = pick(r, letters)
		}
		return string(b) + ".com"
	}},
	{"kraken", "random", func(r *rand.Rand, _ []string) string {
		// 6–11 letters ending in a vowel-heavy tail, on dynamic DNS suffixes.
		return randLabel(r, letters, 4, 8) + string(pick(r, vowels)) + string(pick(r, conson)) + string(pick(r, vowels)) +
			"." + pickStr(r, []string{"dyndns.org", "yi.org", "dynserv.com", "mooo.com", "com", "net"})
	}},
}

// TLDs common to benign and DGA names, for callers composing names.
var TLDs = tldsCommon
