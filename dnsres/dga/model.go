package dga

import (
	"bufio"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"golang.org/x/net/idna"
)

//go:generate go run ./internal/train -data data -out model.json -report data/report.txt

// Shipped model and dictionary (see README.md for how they were made).
var (
	//go:embed model.json
	modelJSON []byte
	//go:embed data/words.txt
	wordsTxt string
)

// triScale is the quantisation of the trigram table: a byte holds
// −log2 P × triScale, capped at 255.
const triScale = 12

// File is the JSON form of a model (model.json).
type File struct {
	Version int `json:"version"`
	// Trigram is base64 of alphaSize³ bytes: −log2 P(c | a b) × 12,
	// index (a·38 + b)·38 + c.
	Trigram string `json:"trigram"`
	// Features names the logistic-regression inputs, in order.
	Features []string `json:"features"`
	// Mean and Scale standardise each feature: (x − Mean) / Scale.
	Mean  []float64 `json:"mean"`
	Scale []float64 `json:"scale"`
	// Weights and Bias are the logistic regression on the standardised
	// features; P(DGA) = 1 / (1 + e^−(w·x + b)).
	Weights []float64 `json:"weights"`
	Bias    float64   `json:"bias"`
	// Threshold is the default P(DGA) above which a name is judged
	// DGA-like (chosen on the training split for ≤ 0.5 % false positives).
	Threshold float64 `json:"threshold"`
}

// Model scores domain names for DGA-likeness. The zero value is not
// usable; use Default or New. Safe for concurrent use.
type Model struct {
	tri       []uint8
	words     map[string]struct{}
	mean      [NumFeatures]float64
	scale     [NumFeatures]float64
	w         [NumFeatures]float64
	bias      float64
	threshold float64
}

var defaultModel = sync.OnceValues(func() (*Model, error) {
	var f File
	if err := json.Unmarshal(modelJSON, &f); err != nil {
		return nil, fmt.Errorf("dga: shipped model: %w", err)
	}
	return New(&f, ParseWords(wordsTxt))
})

// Default returns the shipped model (trained by `go generate` from
// data/), parsed once.
func Default() (*Model, error) { return defaultModel() }

// ParseWords splits a dictionary, one lower-case word a line.
func ParseWords(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" {
			out = append(out, w)
		}
	}
	return out
}

// New builds a model from its file form and the segmentation dictionary.
func New(f *File, words []string) (*Model, error) {
	if f.Version != 1 {
		return nil, fmt.Errorf("dga: model version %d, want 1", f.Version)
	}
	tri, err := base64.StdEncoding.DecodeString(f.Trigram)
	if err != nil {
		return nil, fmt.Errorf("dga: model trigram table: %w", err)
	}
	if len(tri) != alphaSize*alphaSize*alphaSize {
		return nil, fmt.Errorf("dga: model trigram table has %d entries, want %d", len(tri), alphaSize*alphaSize*alphaSize)
	}
	if len(f.Weights) != NumFeatures || len(f.Mean) != NumFeatures || len(f.Scale) != NumFeatures {
		return nil, errors.New("dga: model has the wrong number of features")
	}
	m := &Model{tri: tri, bias: f.Bias, threshold: f.Threshold, words: make(map[string]struct{}, len(words))}
	copy(m.w[:], f.Weights)
	copy(m.mean[:], f.Mean)
	copy(m.scale[:], f.Scale)
	for i, s := range m.scale {
		if s == 0 {
			m.scale[i] = 1
		}
	}
	for _, w := range words {
		if len(w) >= 3 && len(w) <= maxWord {
			m.words[w] = struct{}{}
		}
	}
	return m, nil
}

// Threshold is the model's default decision threshold for Score.
func (m *Model) Threshold() float64 { return m.threshold }

// ScoreLabel returns P(DGA) for one label (what a DGA chooses: the label
// left of the public suffix). Labels shorter than 6 characters score 0:
// too short to tell (and too few to be a DGA's search space).
func (m *Model) ScoreLabel(label string) float64 {
	if len(label) < 6 || len(label) > 63 {
		return 0
	}
	var f [NumFeatures]float64
	m.features(label, &f)
	return m.prob(&f)
}

func (m *Model) prob(f *[NumFeatures]float64) float64 {
	z := m.bias
	for i := range f {
		z += m.w[i] * (f[i] - m.mean[i]) / m.scale[i]
	}
	return 1 / (1 + math.Exp(-z))
}

// Result is the judgement of one name.
type Result struct {
	// Label is the label scored; Registered the registered domain (or the
	// name under a dynamic-DNS suffix) it belongs to.
	Label, Registered string
	// Score is P(DGA) in [0, 1]; 0 for names not scored.
	Score float64
	// Skipped says why a name was not scored: "idn" (an internationalised
	// label, e.g. Japanese, which the Latin n-gram model cannot judge),
	// "short", "suffix" (the name is a public suffix); empty when scored.
	Skipped string
}

// Score judges a lower-case domain name (trailing dot optional).
// Internationalised labels (xn--) are decoded: labels in non-Latin
// scripts are not scored; Latin ones are scored in their ASCII-folded
// form.
func (m *Model) Score(name string) Result {
	label, reg, ok := Split(name)
	if !ok {
		return Result{Skipped: "suffix"}
	}
	r := Result{Label: label, Registered: reg}
	if strings.HasPrefix(label, "xn--") {
		u, err := idna.Punycode.ToUnicode(label)
		if err != nil {
			// Not valid punycode: judge the ASCII as it is.
			r.Score = m.ScoreLabel(label)
			return r
		}
		ascii := foldLatin(u)
		if ascii == "" {
			r.Skipped = "idn"
			return r
		}
		label = ascii
	}
	if len(label) < 6 {
		r.Skipped = "short"
		return r
	}
	r.Score = m.ScoreLabel(label)
	return r
}

// foldLatin returns s with Latin letters folded to a–z when s is written
// in Latin script, or "" when it holds letters of other scripts.
func foldLatin(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r >= 0xC0 && r <= 0x24F: // Latin-1 Supplement, Extended-A/B
			b.WriteByte(latinBase(r))
		default:
			return ""
		}
	}
	return b.String()
}

// latinBase is a rough base letter of an accented Latin letter.
func latinBase(r rune) byte {
	const table = "aaaaaaaceeeeiiiidnooooo*ouuuuyts"
	if r >= 0xC0 && r <= 0xFF {
		c := table[(r-0xC0)%32]
		if c == '*' {
			return 'o'
		}
		return c
	}
	return 'a' + byte(r%26)
}
