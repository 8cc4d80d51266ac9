package tenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultKeep is the number of configuration generations kept by default.
// The specification asks for at least 2 generations after every change.
const DefaultKeep = 10

// HistoryConfig configures a History.
type HistoryConfig struct {
	// Dir is the directory holding the generations; created if missing.
	// Required.
	Dir string
	// Keep is how many generations to keep; 0 means DefaultKeep (10).
	// Values below 2 are refused.
	Keep int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Generation describes one applied configuration.
type Generation struct {
	// N is the generation number, starting at 1 and never reused.
	N int `json:"n"`
	// Time is when it was committed.
	Time time.Time `json:"time"`
	// SHA256 is the hex SHA-256 of the configuration bytes.
	SHA256 string `json:"sha256"`
	// Note says why it was committed ("startup", "reload", "rollback to 3").
	Note string `json:"note,omitempty"`
	// Size is the configuration's length in bytes.
	Size int64 `json:"size"`
}

// History keeps every applied configuration as a numbered generation on
// disk: gen-000001.yaml with its metadata in gen-000001.json. Files are
// written atomically (temporary file, fsync, rename, directory fsync), so a
// crash leaves either the whole generation or none. The oldest generations
// beyond Keep are deleted. A History is safe for concurrent use within one
// process; two processes committing to one directory at the same time may
// race for a number, and one of them then fails rather than overwriting.
type History struct {
	dir  string
	keep int
	now  func() time.Time
	mu   sync.Mutex
}

// OpenHistory opens (creating if needed) the generation directory.
func OpenHistory(cfg HistoryConfig) (*History, error) {
	if cfg.Dir == "" {
		return nil, errors.New("tenant: history: Dir is required")
	}
	keep := cfg.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	if keep < 2 {
		return nil, fmt.Errorf("tenant: history: Keep %d is below the minimum of 2 generations", cfg.Keep)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("tenant: history: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &History{dir: cfg.Dir, keep: keep, now: now}, nil
}

func (h *History) dataPath(n int) string {
	return filepath.Join(h.dir, fmt.Sprintf("gen-%06d.yaml", n))
}
func (h *History) metaPath(n int) string {
	return filepath.Join(h.dir, fmt.Sprintf("gen-%06d.json", n))
}

// Commit stores data as a new generation, unless it is byte-identical to the
// latest one, in which case it returns the latest with created false.
func (h *History) Commit(data []byte, note string) (Generation, bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	gens, err := h.list()
	if err != nil {
		return Generation{}, false, err
	}
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	next := 1
	if len(gens) > 0 {
		last := gens[len(gens)-1]
		if last.SHA256 == hexSum {
			return last, false, nil
		}
		next = last.N + 1
	}
	g := Generation{N: next, Time: h.now().UTC(), SHA256: hexSum, Note: note, Size: int64(len(data))}
	meta, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return Generation{}, false, fmt.Errorf("tenant: history: %w", err)
	}
	if _, err := os.Stat(h.dataPath(next)); err == nil {
		return Generation{}, false, fmt.Errorf("tenant: history: generation %d already exists", next)
	}
	// Data first, metadata last: a generation without metadata is ignored.
	if err := WriteFileAtomic(h.dataPath(next), data, 0o640); err != nil {
		return Generation{}, false, fmt.Errorf("tenant: history: %w", err)
	}
	if err := WriteFileAtomic(h.metaPath(next), append(meta, '\n'), 0o640); err != nil {
		return Generation{}, false, fmt.Errorf("tenant: history: %w", err)
	}
	gens = append(gens, g)
	for len(gens) > h.keep {
		old := gens[0].N
		gens = gens[1:]
		// Metadata first, so a half-deleted generation is ignored.
		if err := os.Remove(h.metaPath(old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return g, true, fmt.Errorf("tenant: history: prune %d: %w", old, err)
		}
		if err := os.Remove(h.dataPath(old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return g, true, fmt.Errorf("tenant: history: prune %d: %w", old, err)
		}
	}
	return g, true, nil
}

// List returns the kept generations, oldest first.
func (h *History) List() ([]Generation, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.list()
}

// Latest returns the newest generation; ok is false when there is none.
func (h *History) Latest() (g Generation, ok bool, err error) {
	gens, err := h.List()
	if err != nil || len(gens) == 0 {
		return Generation{}, false, err
	}
	return gens[len(gens)-1], true, nil
}

func (h *History) list() ([]Generation, error) {
	ents, err := os.ReadDir(h.dir)
	if err != nil {
		return nil, fmt.Errorf("tenant: history: %w", err)
	}
	var gens []Generation
	for _, e := range ents {
		name := e.Name()
		num, ok := strings.CutPrefix(name, "gen-")
		if !ok {
			continue
		}
		num, ok = strings.CutSuffix(num, ".json")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n <= 0 {
			continue
		}
		b, err := os.ReadFile(filepath.Join(h.dir, name))
		if err != nil {
			return nil, fmt.Errorf("tenant: history: %w", err)
		}
		var g Generation
		if err := json.Unmarshal(b, &g); err != nil {
			return nil, fmt.Errorf("tenant: history: %s: %w", name, err)
		}
		if g.N != n {
			return nil, fmt.Errorf("tenant: history: %s: records generation %d", name, g.N)
		}
		gens = append(gens, g)
	}
	slices.SortFunc(gens, func(a, b Generation) int { return a.N - b.N })
	return gens, nil
}

// Load returns the configuration bytes of generation n, checked against
// its recorded SHA-256.
func (h *History) Load(n int) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	meta, err := os.ReadFile(h.metaPath(n))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("tenant: history: no generation %d (kept: %s)", n, h.keptList())
	}
	if err != nil {
		return nil, fmt.Errorf("tenant: history: %w", err)
	}
	var g Generation
	if err := json.Unmarshal(meta, &g); err != nil {
		return nil, fmt.Errorf("tenant: history: generation %d: %w", n, err)
	}
	data, err := os.ReadFile(h.dataPath(n))
	if err != nil {
		return nil, fmt.Errorf("tenant: history: %w", err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != g.SHA256 {
		return nil, fmt.Errorf("tenant: history: generation %d is corrupt (sha256 mismatch)", n)
	}
	return data, nil
}

func (h *History) keptList() string {
	gens, err := h.list()
	if err != nil || len(gens) == 0 {
		return "none"
	}
	var s []string
	for _, g := range gens {
		s = append(s, strconv.Itoa(g.N))
	}
	return strings.Join(s, ", ")
}

// Diff returns a unified diff from generation a to generation b ("" when
// they are identical).
func (h *History) Diff(a, b int) (string, error) {
	da, err := h.Load(a)
	if err != nil {
		return "", err
	}
	db, err := h.Load(b)
	if err != nil {
		return "", err
	}
	return UnifiedDiff(fmt.Sprintf("generation %d", a), fmt.Sprintf("generation %d", b), da, db), nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory, so
// readers and crashes see either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// UnifiedDiff returns a unified diff (3 lines of context) of two texts, or
// "" when they are equal. It is line-based and meant for configuration
// files, O(n·m) in the lines that differ after trimming the common head
// and tail.
func UnifiedDiff(nameA, nameB string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	la, lb := splitLines(a), splitLines(b)
	// Trim common prefix and suffix.
	pre := 0
	for pre < len(la) && pre < len(lb) && la[pre] == lb[pre] {
		pre++
	}
	suf := 0
	for suf < len(la)-pre && suf < len(lb)-pre && la[len(la)-1-suf] == lb[len(lb)-1-suf] {
		suf++
	}
	ma, mb := la[pre:len(la)-suf], lb[pre:len(lb)-suf]
	// LCS table over the middle.
	lcs := make([][]int32, len(ma)+1)
	for i := range lcs {
		lcs[i] = make([]int32, len(mb)+1)
	}
	for i := len(ma) - 1; i >= 0; i-- {
		for j := len(mb) - 1; j >= 0; j-- {
			if ma[i] == mb[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte // ' ', '-', '+'
		text string
	}
	var ops []op
	for _, l := range la[:pre] {
		ops = append(ops, op{' ', l})
	}
	i, j := 0, 0
	for i < len(ma) || j < len(mb) {
		switch {
		case i < len(ma) && j < len(mb) && ma[i] == mb[j]:
			ops = append(ops, op{' ', ma[i]})
			i++
			j++
		case j < len(mb) && (i == len(ma) || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, op{'+', mb[j]})
			j++
		default:
			ops = append(ops, op{'-', ma[i]})
			i++
		}
	}
	for _, l := range la[len(la)-suf:] {
		ops = append(ops, op{' ', l})
	}
	// Group into hunks with 3 lines of context.
	const ctx = 3
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	for k := 0; k < len(ops); {
		if ops[k].kind == ' ' {
			k++
			continue
		}
		start := max(k-ctx, 0)
		end := k
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			run := end
			for run < len(ops) && ops[run].kind == ' ' {
				run++
			}
			if run-end > 2*ctx || run == len(ops) {
				end = min(end+ctx, len(ops))
				break
			}
			end = run
		}
		// Line numbers of the hunk in a and b.
		aLine, bLine := 1, 1
		for _, o := range ops[:start] {
			if o.kind != '+' {
				aLine++
			}
			if o.kind != '-' {
				bLine++
			}
		}
		aN, bN := 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aN++
			}
			if o.kind != '-' {
				bN++
			}
		}
		if aN == 0 {
			aLine--
		}
		if bN == 0 {
			bLine--
		}
		fmt.Fprintf(&out, "@@ -%d,%d +%d,%d @@\n", aLine, aN, bLine, bN)
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
		}
		k = end
	}
	return out.String()
}

func splitLines(b []byte) []string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
