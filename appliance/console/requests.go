package console

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jichitai/seccloud/tenant"
)

// RequestKind is what a request asks for.
type RequestKind string

// The request kinds: an inquiry (問い合わせ, a question or a file
// exchange) and a settings-change request (設定変更依頼, handled by the
// next business day).
const (
	KindInquiry RequestKind = "inquiry"
	KindChange  RequestKind = "change"
)

// RequestStatus is where a request stands.
type RequestStatus string

// The statuses, in their usual order.
const (
	StatusReceived   RequestStatus = "received"    // 受付
	StatusInProgress RequestStatus = "in_progress" // 対応中
	StatusWaiting    RequestStatus = "waiting"     // 回答待ち (waiting for the tenant)
	StatusDone       RequestStatus = "done"        // 完了
)

var requestStatuses = []RequestStatus{StatusReceived, StatusInProgress, StatusWaiting, StatusDone}

// Valid reports whether s is one of the statuses.
func (s RequestStatus) Valid() bool {
	for _, v := range requestStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Request is an inquiry or a settings-change request of a tenant, with
// its comment thread and attachments.
type Request struct {
	ID      string        `json:"id"`
	Tenant  string        `json:"tenant"`
	Kind    RequestKind   `json:"kind"`
	Subject string        `json:"subject"`
	Body    string        `json:"body"`
	Status  RequestStatus `json:"status"`
	By      string        `json:"by"`   // the user who filed it
	Side    string        `json:"side"` // "tenant" or "operator" (filed on the tenant's behalf)
	Created time.Time     `json:"created"`
	Updated time.Time     `json:"updated"`
	// Due is the answer deadline of a settings-change request: the end of
	// the next business day (Monday–Friday) after it was filed.
	Due         *time.Time   `json:"due,omitempty"`
	Comments    []Comment    `json:"comments"`
	Attachments []Attachment `json:"attachments"`
}

// Comment is one entry of a request's thread: a comment, a status
// change, or both.
type Comment struct {
	Time   time.Time     `json:"time"`
	By     string        `json:"by"`
	Side   string        `json:"side"`
	Text   string        `json:"text,omitempty"`
	Status RequestStatus `json:"status,omitempty"` // the new status, when it changed
	Files  []int         `json:"files,omitempty"`  // attachment numbers added with it
}

// Attachment is one uploaded file. It is stored under its number, never
// under its name; Name is shown (escaped) and sent back in
// Content-Disposition only.
type Attachment struct {
	N      int       `json:"n"`
	Name   string    `json:"name"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	By     string    `json:"by"`
	Time   time.Time `json:"time"`
}

// Limits of requests.
const (
	// DefaultMaxUpload is the default cap of the files of one upload
	// (10 MiB).
	DefaultMaxUpload = 10 << 20
	// MaxAttachments is the cap of attachments per request.
	MaxAttachments = 50
	// MaxFileName is the longest file name accepted, in bytes.
	MaxFileName = 200
	maxSubject  = 200
	maxText     = 8000
	requestsDir = "requests"
)

// Errors of Requests.
var (
	ErrBadFileName = errors.New("console: unacceptable file name")
	ErrTooLarge    = errors.New("console: upload too large")
	errBadInput    = errors.New("console: bad input")
)

// RequestsConfig configures OpenRequests.
type RequestsConfig struct {
	// Dir holds one JSON file per request and a folder of attachments
	// per request. Required.
	Dir string
	// Location is the time zone of business days; nil means time.Local.
	Location *time.Location
	// Now gives the time; nil means time.Now.
	Now func() time.Time
}

// Requests stores requests durably: each change rewrites the request's
// JSON file atomically (temporary file, fsync, rename, fsync of the
// directory) before returning, and each attachment is fsynced before it
// is listed. Safe for concurrent use.
type Requests struct {
	cfg RequestsConfig
	mu  sync.Mutex
	m   map[string]*Request
}

var requestIDRE = regexp.MustCompile(`^R[0-9]{8}-[0-9a-f]{8}$`)

// OpenRequests opens (or creates) the request store in cfg.Dir and loads
// every request.
func OpenRequests(cfg RequestsConfig) (*Requests, error) {
	if cfg.Dir == "" {
		return nil, errors.New("console: RequestsConfig.Dir is required")
	}
	if cfg.Location == nil {
		cfg.Location = time.Local
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("console: requests: %w", err)
	}
	rs := &Requests{cfg: cfg, m: map[string]*Request{}}
	names, err := filepath.Glob(filepath.Join(cfg.Dir, "R*.json"))
	if err != nil {
		return nil, fmt.Errorf("console: requests: %w", err)
	}
	for _, n := range names {
		id := strings.TrimSuffix(filepath.Base(n), ".json")
		if !requestIDRE.MatchString(id) {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("console: requests: %w", err)
		}
		var r Request
		if err := json.Unmarshal(b, &r); err != nil || r.ID != id {
			return nil, fmt.Errorf("console: requests: %s: unreadable (%v)", n, err)
		}
		rs.m[id] = &r
	}
	return rs, nil
}

// CleanFileName checks an uploaded file's name and returns it trimmed.
// Names with a path (/ or \), "." or "..", control or format characters,
// invalid UTF-8, or longer than MaxFileName bytes are ErrBadFileName.
// Markup (<, >, quotes) is allowed: it is escaped wherever the name is
// shown and never used as a path.
func CleanFileName(name string) (string, error) {
	name = strings.TrimSpace(name)
	switch {
	case name == "" || name == "." || name == "..":
		return "", fmt.Errorf("%w: empty", ErrBadFileName)
	case len(name) > MaxFileName:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrBadFileName, MaxFileName)
	case !utf8.ValidString(name):
		return "", fmt.Errorf("%w: not UTF-8", ErrBadFileName)
	case strings.ContainsAny(name, `/\`):
		return "", fmt.Errorf("%w: contains a path", ErrBadFileName)
	case strings.HasPrefix(name, ".."):
		return "", fmt.Errorf("%w: starts with ..", ErrBadFileName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return "", fmt.Errorf("%w: control character %U", ErrBadFileName, r)
		}
	}
	return name, nil
}

// cleanText trims a subject, body or comment; it refuses invalid UTF-8
// and NULs and caps the length.
func cleanText(s string, max int) (string, error) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("%w: not UTF-8 text", errBadInput)
	}
	if len(s) > max {
		return "", fmt.Errorf("%w: longer than %d bytes", errBadInput, max)
	}
	return s, nil
}

// nextBusinessDayEnd is the end (23:59:59) of the first Monday–Friday
// after t, in loc. Public holidays are not known.
func nextBusinessDayEnd(t time.Time, loc *time.Location) time.Time {
	d := t.In(loc)
	d = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, loc)
	for {
		d = d.AddDate(0, 0, 1)
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			return d.Add(24*time.Hour - time.Second)
		}
	}
}

// NewRequest is what Create needs.
type NewRequest struct {
	Tenant, Subject, Body, By, Side string
	Kind                            RequestKind
}

// Create files a new request (status received) and returns it.
func (rs *Requests) Create(n NewRequest) (Request, error) {
	var err error
	if n.Kind != KindInquiry && n.Kind != KindChange {
		return Request{}, fmt.Errorf("%w: kind must be inquiry or change", errBadInput)
	}
	// A subject is one line (it also goes into mail subjects).
	n.Subject = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		return r
	}, n.Subject)
	if n.Subject, err = cleanText(n.Subject, maxSubject); err != nil || n.Subject == "" {
		return Request{}, fmt.Errorf("%w: subject: 1-%d bytes of text", errBadInput, maxSubject)
	}
	if n.Body, err = cleanText(n.Body, maxText); err != nil {
		return Request{}, err
	}
	now := rs.cfg.Now().UTC()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return Request{}, err
	}
	r := &Request{ID: "R" + now.In(rs.cfg.Location).Format("20060102") + "-" + hex.EncodeToString(rnd[:]),
		Tenant: n.Tenant, Kind: n.Kind, Subject: n.Subject, Body: n.Body, Status: StatusReceived,
		By: n.By, Side: n.Side, Created: now, Updated: now, Comments: []Comment{}, Attachments: []Attachment{}}
	if n.Kind == KindChange {
		due := nextBusinessDayEnd(now, rs.cfg.Location).UTC()
		r.Due = &due
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if err := rs.saveLocked(r); err != nil {
		return Request{}, err
	}
	rs.m[r.ID] = r
	return copyRequest(r), nil
}

func copyRequest(r *Request) Request {
	c := *r
	c.Comments = append([]Comment{}, r.Comments...)
	c.Attachments = append([]Attachment{}, r.Attachments...)
	return c
}

func (rs *Requests) saveLocked(r *Request) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := tenant.WriteFileAtomic(filepath.Join(rs.cfg.Dir, r.ID+".json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("console: requests: %w", err)
	}
	return nil
}

// Get returns one request; an unknown id is ErrNotFound.
func (rs *Requests) Get(id string) (Request, error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.m[id]
	if !ok {
		return Request{}, ErrNotFound
	}
	return copyRequest(r), nil
}

// List returns the requests of tenantID ("" = all), most recently
// updated first, without their comments.
func (rs *Requests) List(tenantID string) []Request {
	rs.mu.Lock()
	out := make([]Request, 0, len(rs.m))
	for _, r := range rs.m {
		if tenantID == "" || r.Tenant == tenantID {
			c := *r
			c.Comments = nil
			out = append(out, c)
		}
	}
	rs.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Updated.Equal(out[j].Updated) {
			return out[i].Updated.After(out[j].Updated)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// Upload is one file to attach.
type Upload struct {
	Name string
	Body io.Reader
}

// Update adds a comment, a status change and attachments to request id
// in one step; at least one of them must be given. maxBytes caps the
// files together (ErrTooLarge, nothing kept).
func (rs *Requests) Update(id, by, side, text string, status RequestStatus, files []Upload, maxBytes int64) (Request, error) {
	text, err := cleanText(text, maxText)
	if err != nil {
		return Request{}, err
	}
	if status != "" && !status.Valid() {
		return Request{}, fmt.Errorf("%w: unknown status %q", errBadInput, status)
	}
	names := make([]string, len(files))
	for i, f := range files {
		if names[i], err = CleanFileName(f.Name); err != nil {
			return Request{}, err
		}
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	r, ok := rs.m[id]
	if !ok {
		return Request{}, ErrNotFound
	}
	if status == r.Status {
		status = ""
	}
	if text == "" && status == "" && len(files) == 0 {
		return Request{}, fmt.Errorf("%w: nothing to add", errBadInput)
	}
	if len(r.Attachments)+len(files) > MaxAttachments {
		return Request{}, fmt.Errorf("%w: at most %d attachments per request", ErrTooLarge, MaxAttachments)
	}
	now := rs.cfg.Now().UTC()
	next := *r
	next.Attachments = append([]Attachment{}, r.Attachments...)
	cm := Comment{Time: now, By: by, Side: side, Text: text, Status: status}
	dir := filepath.Join(rs.cfg.Dir, r.ID)
	var written []string
	undo := func() {
		for _, p := range written {
			_ = os.Remove(p)
		}
	}
	left := maxBytes
	for i, f := range files {
		n := len(next.Attachments) + 1
		p := filepath.Join(dir, fmt.Sprintf("%d", n))
		size, sum, err := writeBlob(dir, p, f.Body, left)
		if err != nil {
			undo()
			return Request{}, err
		}
		written = append(written, p)
		left -= size
		next.Attachments = append(next.Attachments, Attachment{N: n, Name: names[i], Size: size, SHA256: sum, By: by, Time: now})
		cm.Files = append(cm.Files, n)
	}
	next.Comments = append(append([]Comment{}, r.Comments...), cm)
	if status != "" {
		next.Status = status
	}
	next.Updated = now
	if err := rs.saveLocked(&next); err != nil {
		undo()
		return Request{}, err
	}
	*r = next
	return copyRequest(r), nil
}

// writeBlob writes one attachment durably, refusing more than limit
// bytes.
func writeBlob(dir, path string, src io.Reader, limit int64) (int64, string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return 0, "", fmt.Errorf("console: requests: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return 0, "", fmt.Errorf("console: requests: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(src, limit+1))
	if err == nil && n > limit {
		err = ErrTooLarge
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		if errors.Is(err, ErrTooLarge) {
			return 0, "", err
		}
		return 0, "", fmt.Errorf("console: requests: %w", err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// Open opens attachment n of request id for reading.
func (rs *Requests) Open(id string, n int) (*os.File, Attachment, error) {
	rs.mu.Lock()
	r, ok := rs.m[id]
	var a Attachment
	if ok {
		ok = false
		for _, x := range r.Attachments {
			if x.N == n {
				a, ok = x, true
			}
		}
	}
	rs.mu.Unlock()
	if !ok {
		return nil, Attachment{}, ErrNotFound
	}
	// The path is built from a stored id (matched at load or generated)
	// and a number: never from anything the client sent.
	f, err := os.Open(filepath.Join(rs.cfg.Dir, id, fmt.Sprintf("%d", n)))
	if err != nil {
		return nil, Attachment{}, fmt.Errorf("console: requests: %w", err)
	}
	return f, a, nil
}
