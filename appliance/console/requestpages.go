package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// readUpload parses a multipart body of at most MaxUpload bytes of files
// plus 1 MiB of fields, and returns its files (any field name "file").
// A larger body is ErrTooLarge: it is audited, and the rest of the body
// is read (up to 4 × the limit) so that the browser gets the refusal
// page instead of a reset connection.
func (c *Console) readUpload(w http.ResponseWriter, r *http.Request, s *scope) ([]Upload, error) {
	limit := c.cfg.MaxUpload + 1<<20
	orig := r.Body
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	err := r.ParseMultipartForm(1 << 20)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || r.ContentLength > limit:
		_, _ = io.CopyN(io.Discard, orig, 4*limit)
		s.audit("request.upload", r.URL.Path, "denied", fmt.Sprintf("upload over %d bytes refused", c.cfg.MaxUpload))
		return nil, ErrTooLarge
	case errors.Is(err, http.ErrNotMultipart):
		// A form without files (urlencoded) is fine.
		if err := r.ParseForm(); err != nil {
			s.audit("request.upload", r.URL.Path, "denied", "form refused: "+err.Error())
			return nil, fmt.Errorf("%w: %v", errBadInput, err)
		}
		return nil, nil
	case err != nil:
		s.audit("request.upload", r.URL.Path, "denied", "form refused: "+err.Error())
		return nil, fmt.Errorf("%w: %v", errBadInput, err)
	}
	var files []Upload
	var total int64
	for _, fhs := range r.MultipartForm.File {
		for _, fh := range fhs {
			if fh.Filename == "" && fh.Size == 0 { // an empty file input
				continue
			}
			// mime/multipart keeps only the base name of a file name: read
			// the name as sent, so that a path is refused, not trimmed.
			name := fh.Filename
			if _, params, err := mime.ParseMediaType(fh.Header.Get("Content-Disposition")); err == nil && params["filename"] != "" {
				name = params["filename"]
			}
			if _, err := CleanFileName(name); err != nil {
				s.audit("request.upload", "file:"+clip(name), "denied", err.Error())
				return nil, err
			}
			total += fh.Size
			if total > c.cfg.MaxUpload {
				s.audit("request.upload", r.URL.Path, "denied", fmt.Sprintf("files over %d bytes refused", c.cfg.MaxUpload))
				return nil, ErrTooLarge
			}
			f, err := fh.Open()
			if err != nil {
				return nil, err
			}
			files = append(files, Upload{Name: name, Body: f})
			if len(files) > MaxAttachments {
				return nil, fmt.Errorf("%w: at most %d files", ErrTooLarge, MaxAttachments)
			}
		}
	}
	return files, nil
}

func closeUploads(files []Upload) {
	for _, f := range files {
		if c, ok := f.Body.(multipart.File); ok {
			_ = c.Close()
		}
	}
}

// uploadPage wraps a page handler whose form may carry files: like page,
// with the multipart body read (and size-checked) before the CSRF check.
func (c *Console) uploadPage(h scoped) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessionOf(r)
		if sess == nil {
			c.audit(r, nil, "request", r.URL.Path, "denied", "no session")
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		s := &scope{c: c, sess: sess, r: r}
		files, err := c.readUpload(w, r, s)
		defer closeUploads(files)
		if err != nil {
			c.uploadError(w, r, s, err)
			return
		}
		if !sameToken(r.PostForm.Get("csrf"), sess.csrf) {
			s.audit("csrf", r.URL.Path, "denied", "missing or wrong CSRF token")
			c.pageError(w, r, s, http.StatusForbidden, "csrf")
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), uploadsKey{}, files))
		s.r = r
		h(w, r, s)
	}
}

type uploadsKey struct{}

func uploadsOf(r *http.Request) []Upload {
	f, _ := r.Context().Value(uploadsKey{}).([]Upload)
	return f
}

// uploadError shows a refused upload or request input clearly.
func (c *Console) uploadError(w http.ResponseWriter, r *http.Request, s *scope, err error) {
	p := c.newPage(r, s, "failed", "requests", nil)
	code := http.StatusBadRequest
	switch {
	case errors.Is(err, ErrTooLarge):
		code = http.StatusRequestEntityTooLarge
		p.Error = fmt.Sprintf(tr(p.Lang, "upload.too.large"), c.cfg.MaxUpload>>20)
	case errors.Is(err, ErrBadFileName):
		p.Error = tr(p.Lang, "upload.bad.name") + " (" + err.Error() + ")"
	case errors.Is(err, errBadInput):
		p.Error = tr(p.Lang, "request.bad") + " (" + err.Error() + ")"
	default:
		c.errorPage(w, r, s, err)
		return
	}
	c.render(w, code, "error", p)
}

var requestKinds = []RequestKind{KindInquiry, KindChange}

// requestQuery reads the list filters: tenant (operators), status and a
// text search over subject and body.
type requestQuery struct {
	Tenant, Status, Q string
}

func (s *scope) queryRequests(q requestQuery) ([]Request, error) {
	list, err := s.requests(q.Tenant)
	if err != nil {
		return nil, err
	}
	needle := strings.ToLower(strings.TrimSpace(q.Q))
	out := list[:0]
	for _, r := range list {
		if q.Status != "" && string(r.Status) != q.Status {
			continue
		}
		if needle != "" && !strings.Contains(strings.ToLower(r.Subject+"\n"+r.Body+"\n"+r.ID), needle) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func readRequestQuery(r *http.Request) requestQuery {
	q := r.URL.Query()
	return requestQuery{Tenant: q.Get("tenant"), Status: q.Get("status"), Q: q.Get("q")}
}

func (c *Console) requestsPage(w http.ResponseWriter, r *http.Request, s *scope) {
	rq := readRequestQuery(r)
	list, err := s.queryRequests(rq)
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	d := struct {
		requestQuery
		List     []Request
		Tenants  any
		Statuses []RequestStatus
		Kinds    []RequestKind
		CanAct   bool
		MaxMB    int64
	}{rq, list, s.tenants(), requestStatuses, requestKinds, s.canAct(), c.cfg.MaxUpload >> 20}
	c.render(w, http.StatusOK, "requests", c.newPage(r, s, "requests", "requests", d))
}

func (c *Console) requestCreatePost(w http.ResponseWriter, r *http.Request, s *scope) {
	f := r.PostForm
	files := uploadsOf(r)
	for _, u := range files {
		if _, err := CleanFileName(u.Name); err != nil {
			s.audit("request.create", "file:"+clip(u.Name), "denied", err.Error())
			c.uploadError(w, r, s, err)
			return
		}
	}
	req, err := s.fileRequest(f.Get("tenant"), NewRequest{Kind: RequestKind(f.Get("kind")), Subject: f.Get("subject"), Body: f.Get("body")}, files)
	if err != nil {
		c.uploadError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(req.ID)+"?done=new", http.StatusSeeOther)
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, s *scope) {
	req, err := s.request("request.view", r.PathValue("id"))
	if err != nil {
		c.errorPage(w, r, s, err)
		return
	}
	files := map[int]Attachment{}
	for _, a := range req.Attachments {
		files[a.N] = a
	}
	d := struct {
		R        Request
		Files    map[int]Attachment
		CanAct   bool
		Statuses []RequestStatus
		MaxMB    int64
	}{req, files, s.canAct(), requestStatuses, c.cfg.MaxUpload >> 20}
	p := c.newPage(r, s, "requests", "requests", d)
	p.Title = tr(p.Lang, "requests") + " " + req.ID
	switch r.URL.Query().Get("done") {
	case "new":
		p.Flash = tr(p.Lang, "request.filed")
	case "1":
		p.Flash = tr(p.Lang, "request.updated")
	}
	c.render(w, http.StatusOK, "request", p)
}

func (c *Console) requestCommentPost(w http.ResponseWriter, r *http.Request, s *scope) {
	id := r.PathValue("id")
	_, err := s.updateRequest(id, r.PostForm.Get("text"), RequestStatus(r.PostForm.Get("status")), uploadsOf(r), false)
	if err != nil {
		c.uploadError(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/requests/"+url.PathEscape(id)+"?done=1", http.StatusSeeOther)
}

// serveAttachment sends a file as a download: always
// application/octet-stream with Content-Disposition attachment (the
// name RFC 2231-encoded by mime.FormatMediaType), nosniff and a sandbox
// CSP, so nothing uploaded is ever rendered by the browser.
func (c *Console) serveAttachment(w http.ResponseWriter, r *http.Request, s *scope) bool {
	f, a, err := s.attachment(r.PathValue("id"), r.PathValue("n"))
	if err != nil {
		return false
	}
	defer f.Close()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	cd := mime.FormatMediaType("attachment", map[string]string{"filename": a.Name})
	if cd == "" {
		cd = "attachment"
	}
	h.Set("Content-Disposition", cd)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	http.ServeContent(w, r, "", a.Time, f)
	return true
}

func (c *Console) requestFile(w http.ResponseWriter, r *http.Request, s *scope) {
	if !c.serveAttachment(w, r, s) {
		c.pageError(w, r, s, http.StatusNotFound, "not.found")
	}
}

// notifyRequest tells the other side about a filed or updated request:
// a tenant's update goes to Config.OperatorMail, an operator's to the
// tenant's contacts that have an e-mail address. The mail is sent in the
// background (the page does not wait for the smarthost); its outcome is
// audited as request.notify.
func (c *Console) notifyRequest(s *scope, req Request, what string) {
	if c.cfg.Mailer == nil {
		return
	}
	var to []string
	if s.operator() {
		if t, err := s.tenant(req.Tenant); err == nil {
			for _, ct := range t.Contacts {
				if ct.Email != "" {
					to = append(to, ct.Email)
				}
			}
		}
	} else if c.cfg.OperatorMail != "" {
		to = []string{c.cfg.OperatorMail}
	}
	e := AuditEntry{User: s.user(), Role: s.sess.acct.Role, Tenant: s.sess.acct.Tenant, Remote: c.remote(s.r),
		Action: "request.notify", Target: "request:" + req.ID}
	if len(to) == 0 {
		e.Outcome, e.Detail, e.Time = "failure", "no recipient (tenant contacts without e-mail, or no operator address)", c.cfg.Now()
		_ = c.cfg.Audit.Append(e)
		return
	}
	subject, text := c.requestMail(req, what, s.user(), s.tenantName(req.Tenant, false))
	c.mailing.Add(1)
	go func() {
		defer c.mailing.Done()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := c.cfg.Mailer.Mail(ctx, to, subject, text)
		e.Time, e.Outcome, e.Detail = c.cfg.Now(), "success", "to "+strings.Join(to, ", ")
		if err != nil {
			e.Outcome, e.Detail = "failure", e.Detail+": "+err.Error()
			c.log.Warn("request notification not sent", "request", req.ID, "err", err)
		}
		if err := c.cfg.Audit.Append(e); err != nil {
			c.log.Error("audit log write failed", "err", err)
		}
	}()
}

// requestMail is the notification text: Japanese, then English. It
// carries the request's subject, status and latest comment as plain
// text, and a link to the console when Config.BaseURL is set.
func (c *Console) requestMail(req Request, what, by, tenantName string) (string, string) {
	ja, en := "更新", "updated"
	if what == "created" {
		ja, en = "受付", "filed"
	}
	subject := fmt.Sprintf("【%s】%s %s %s / Request %s %s", tr("ja", "kind."+string(req.Kind)), req.ID, ja, clip(req.Subject), req.ID, en)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("%s（%s）の%sが%sされました。", tenantName, req.Tenant, tr("ja", "kind."+string(req.Kind)), ja)
	w("")
	w("番号: %s", req.ID)
	w("件名: %s", req.Subject)
	w("状態: %s", tr("ja", "status."+string(req.Status)))
	w("更新者: %s", by)
	if req.Due != nil {
		w("対応期限: %s", req.Due.In(c.cfg.Location).Format("2006-01-02 15:04"))
	}
	if n := len(req.Comments); n > 0 && req.Comments[n-1].Text != "" {
		w("")
		w("コメント:")
		w("%s", req.Comments[n-1].Text)
	} else if what == "created" && req.Body != "" {
		w("")
		w("内容:")
		w("%s", req.Body)
	}
	if n := len(req.Comments); n > 0 && len(req.Comments[n-1].Files) > 0 {
		w("添付ファイル: %d 件（コンソールからダウンロードしてください）", len(req.Comments[n-1].Files))
	}
	link := ""
	if c.cfg.BaseURL != "" {
		link = strings.TrimRight(c.cfg.BaseURL, "/") + "/requests/" + url.PathEscape(req.ID)
		w("")
		w("詳細: %s", link)
	}
	w("")
	w("---- English ----")
	w("%s %s of %s (%s) was %s by %s.", tr("en", "kind."+string(req.Kind)), req.ID, tenantName, req.Tenant, en, by)
	w("Subject: %s", req.Subject)
	w("Status: %s", tr("en", "status."+string(req.Status)))
	if link != "" {
		w("Details: %s", link)
	}
	return subject, b.String()
}

// API

// RequestInput is the body of POST /api/v1/requests.
type RequestInput struct {
	Tenant  string      `json:"tenant"`
	Kind    RequestKind `json:"kind"`
	Subject string      `json:"subject"`
	Body    string      `json:"body"`
}

func (c *Console) apiRequestError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrTooLarge):
		apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%v (at most %d bytes of files per upload)", err, c.cfg.MaxUpload))
	case errors.Is(err, ErrBadFileName), errors.Is(err, errBadInput):
		apiError(w, http.StatusBadRequest, err.Error())
	default:
		c.apiScopeError(w, err)
	}
}

func (c *Console) apiRequests(w http.ResponseWriter, r *http.Request, s *scope) {
	list, err := s.queryRequests(readRequestQuery(r))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

func (c *Console) apiRequestCreate(w http.ResponseWriter, r *http.Request, s *scope) {
	var in RequestInput
	if !readJSON(w, r, &in) {
		return
	}
	req, err := s.fileRequest(in.Tenant, NewRequest{Kind: in.Kind, Subject: in.Subject, Body: in.Body}, nil)
	if err != nil {
		c.apiRequestError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, req)
}

func (c *Console) apiRequest(w http.ResponseWriter, r *http.Request, s *scope) {
	req, err := s.request("request.view", r.PathValue("id"))
	if err != nil {
		c.apiScopeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (c *Console) apiRequestComment(w http.ResponseWriter, r *http.Request, s *scope) {
	var in struct {
		Text   string        `json:"text"`
		Status RequestStatus `json:"status"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	req, err := s.updateRequest(r.PathValue("id"), in.Text, in.Status, nil, false)
	if err != nil {
		c.apiRequestError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (c *Console) apiRequestAttach(w http.ResponseWriter, r *http.Request, s *scope) {
	files, err := c.readUpload(w, r, s)
	defer closeUploads(files)
	if err != nil {
		c.apiRequestError(w, err)
		return
	}
	if len(files) == 0 {
		apiError(w, http.StatusBadRequest, "want multipart/form-data with at least one file")
		return
	}
	req, err := s.updateRequest(r.PathValue("id"), r.PostForm.Get("text"), "", files, false)
	if err != nil {
		c.apiRequestError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (c *Console) apiRequestFile(w http.ResponseWriter, r *http.Request, s *scope) {
	if !c.serveAttachment(w, r, s) {
		apiError(w, http.StatusNotFound, "not found")
	}
}
