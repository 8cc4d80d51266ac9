package spam

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
)

//go:generate go run ./internal/cmd/jacorpus -lang ja -o corpus/ja.tar.gz
//go:generate go run ./internal/cmd/jacorpus -lang en -spam 500 -ham 700 -o corpus/en.tar.gz
//go:generate go run ./internal/cmd/spamtrain -corpus corpus -o model.gz -report corpus/REPORT.md

//go:embed model.gz
var defaultModel []byte

// Model is a logistic-regression text classifier over the tokens of
// Tokens: P(spam) = σ(bias + Σ w(t) / √max(n, 40)) over the n known
// tokens of a message. A Model is immutable and safe for concurrent use.
type Model struct {
	bias    float64
	weights map[string]float32
}

// DefaultModel returns the model trained on the corpus shipped in
// corpus/ (see README.md), parsed from the embedded model.gz. Each call
// parses it again (about 20 ms): keep the result.
func DefaultModel() (*Model, error) {
	return ReadModel(bytes.NewReader(defaultModel))
}

const magic = "seccloud-spam-model 1"

// ReadModel reads a model written by WriteTo (gzip-compressed text).
func ReadModel(r io.Reader) (*Model, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("spam: model: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	m := &Model{weights: map[string]float32{}}
	line := 0
	for sc.Scan() {
		line++
		t := sc.Text()
		switch {
		case line == 1:
			if t != magic {
				return nil, fmt.Errorf("spam: model: bad header %q", t)
			}
			continue
		case line == 2:
			b, ok := strings.CutPrefix(t, "bias\t")
			if !ok {
				return nil, fmt.Errorf("spam: model: line 2: no bias")
			}
			if m.bias, err = strconv.ParseFloat(b, 64); err != nil {
				return nil, fmt.Errorf("spam: model: bias: %w", err)
			}
			continue
		}
		i := strings.LastIndexByte(t, '\t')
		if i < 0 {
			return nil, fmt.Errorf("spam: model: line %d: no weight", line)
		}
		w, err := strconv.ParseFloat(t[i+1:], 32)
		if err != nil {
			return nil, fmt.Errorf("spam: model: line %d: %w", line, err)
		}
		m.weights[t[:i]] = float32(w)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("spam: model: %w", err)
	}
	if line < 2 {
		return nil, fmt.Errorf("spam: model: empty")
	}
	return m, nil
}

// WriteTo writes the model, gzip-compressed, tokens sorted.
func (m *Model) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestCompression)
	bw := bufio.NewWriter(zw)
	fmt.Fprintf(bw, "%s\nbias\t%s\n", magic, strconv.FormatFloat(m.bias, 'g', 6, 64))
	keys := make([]string, 0, len(m.weights))
	for k := range m.weights {
		if strings.ContainsAny(k, "\t\r\n") {
			continue // not representable; Tokens never makes these
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(bw, "%s\t%s\n", k, strconv.FormatFloat(float64(m.weights[k]), 'g', 4, 32))
	}
	if err := bw.Flush(); err != nil {
		return cw.n, err
	}
	err := zw.Close()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Len returns the number of tokens the model knows.
func (m *Model) Len() int { return len(m.weights) }

// Contribution is one token's share of a score.
type Contribution struct {
	Token  string
	Weight float64
}

// Result is the classifier's view of one message.
type Result struct {
	// Prob is P(spam) in [0, 1].
	Prob float64
	// Logit is log(Prob / (1-Prob)).
	Logit float64
	// Top are the tokens that pushed the score most (either way), at
	// most 5.
	Top []Contribution
}

// Classify scores a token list (from Tokens).
func (m *Model) Classify(tokens []string) Result {
	z := m.bias
	var cs []Contribution
	n := 0
	for _, t := range tokens {
		if _, ok := m.weights[t]; ok {
			n++
		}
	}
	if n == 0 {
		return Result{Prob: sigmoid(z), Logit: z}
	}
	scale := 1 / math.Sqrt(float64(max(n, minNorm)))
	for _, t := range tokens {
		w, ok := m.weights[t]
		if !ok {
			continue
		}
		c := float64(w) * scale
		z += c
		cs = append(cs, Contribution{t, c})
	}
	sort.Slice(cs, func(i, j int) bool { return math.Abs(cs[i].Weight) > math.Abs(cs[j].Weight) })
	if len(cs) > 5 {
		cs = cs[:5]
	}
	return Result{Prob: sigmoid(z), Logit: z, Top: cs}
}

// ClassifyMessage tokenises raw and scores it.
func (m *Model) ClassifyMessage(raw []byte) Result { return m.Classify(Tokens(raw)) }

// minNorm is the least token count a message is normalised by, so that
// a short message's few tokens do not weigh as much as a long one's many.
const minNorm = 40

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// Example is one labelled training document.
type Example struct {
	Tokens []string
	Spam   bool
}

// TrainOptions tune Train. Zero fields take the defaults.
type TrainOptions struct {
	// Epochs over the data (default 12).
	Epochs int
	// MinDocs drops tokens seen in fewer documents (default 2).
	MinDocs int
	// L2 is the regularisation strength per update (default 1e-5).
	L2 float64
	// Rate is the AdaGrad learning rate (default 0.5).
	Rate float64
	// Seed shuffles the data (default 1).
	Seed uint64
}

// Train fits a model to the examples by stochastic gradient descent with
// AdaGrad, the classes weighted to count equally.
func Train(ex []Example, o TrainOptions) *Model {
	if o.Epochs <= 0 {
		o.Epochs = 12
	}
	if o.MinDocs <= 0 {
		o.MinDocs = 2
	}
	if o.L2 <= 0 {
		o.L2 = 1e-5
	}
	if o.Rate <= 0 {
		o.Rate = 0.5
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	df := map[string]int{}
	nspam := 0
	for _, e := range ex {
		for _, t := range e.Tokens {
			df[t]++
		}
		if e.Spam {
			nspam++
		}
	}
	idx := map[string]int{}
	var vocab []string
	for t, n := range df {
		if n >= o.MinDocs {
			idx[t] = len(vocab)
			vocab = append(vocab, t)
		}
	}
	docs := make([][]int, len(ex))
	for i, e := range ex {
		for _, t := range e.Tokens {
			if j, ok := idx[t]; ok {
				docs[i] = append(docs[i], j)
			}
		}
	}
	wSpam, wHam := 1.0, 1.0
	if nspam > 0 && nspam < len(ex) {
		wSpam = float64(len(ex)) / (2 * float64(nspam))
		wHam = float64(len(ex)) / (2 * float64(len(ex)-nspam))
	}
	w := make([]float64, len(vocab))
	g2 := make([]float64, len(vocab))
	var bias, bg2 float64
	r := rand.New(rand.NewPCG(o.Seed, 2))
	order := make([]int, len(ex))
	for i := range order {
		order[i] = i
	}
	for range o.Epochs {
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, i := range order {
			d := docs[i]
			x := 1 / math.Sqrt(float64(max(len(d), minNorm)))
			z := bias
			for _, j := range d {
				z += w[j] * x
			}
			y, cw := 0.0, wHam
			if ex[i].Spam {
				y, cw = 1, wSpam
			}
			g := (sigmoid(z) - y) * cw
			_ = bg2 // the bias stays 0: no evidence means P(spam) = 0.5
			for _, j := range d {
				gj := g*x + o.L2*w[j]
				g2[j] += gj * gj
				w[j] -= o.Rate * gj / math.Sqrt(g2[j]+1e-8)
			}
		}
	}
	m := &Model{bias: bias, weights: make(map[string]float32, len(vocab))}
	for j, t := range vocab {
		if math.Abs(w[j]) >= 1e-3 {
			m.weights[t] = float32(w[j])
		}
	}
	return m
}
