package archive

import (
	"bytes"
	"compress/zlib"
	"io"
	"strconv"
)

// PDF is what InspectPDF found in a document.
type PDF struct {
	// JavaScript: a /JavaScript or /JS key or action anywhere.
	JavaScript bool
	// Launch: a /Launch action (runs a program or opens a file).
	Launch bool
	// AutoAction: /OpenAction or /AA (additional actions) that runs an
	// action of a risky type on opening (JavaScript, Launch, URI,
	// SubmitForm, ImportData, GoToR, GoToE) — not a plain destination.
	AutoAction string
	// OpenAction: an /OpenAction entry of any kind (often only a view
	// setting).
	OpenAction bool
	// EmbeddedFile: the document carries embedded files.
	EmbeddedFile bool
	// Encrypted: an /Encrypt dictionary; encrypted streams (and the
	// object streams among them) could not be inspected.
	Encrypted bool
}

// IsPDF reports whether b starts like a PDF (the header may follow up to
// 1 KiB of junk, as readers accept).
func IsPDF(b []byte) bool {
	return bytes.Contains(b[:min(len(b), 1024+5)], []byte("%PDF-"))
}

// Limits of InspectPDF.
const (
	pdfMaxInflate = 16 << 20 // decompressed bytes over all streams
	pdfMaxStreams = 2000
	pdfMaxDepth   = 2
)

var riskyActionTypes = map[string]bool{"JavaScript": true, "Launch": true, "URI": true, "SubmitForm": true,
	"ImportData": true, "GoToR": true, "GoToE": true}

type pdfScan struct {
	res     PDF
	budget  int
	streams int
	// raw is the whole file, for looking up "n g obj" references
	// (at most 64 lookups, each a scan of the file).
	raw     []byte
	lookups int
}

// InspectPDF lexes a PDF (names, dictionaries, strings, comments,
// streams) and the FlateDecode streams inside it (object streams of PDF
// 1.5+ hide dictionaries there), and reports active content. Names are
// normalised (#xx escapes decoded), so /J#61vaScript counts as
// /JavaScript. It reads at most 16 MiB of decompressed data.
func InspectPDF(b []byte) PDF {
	s := &pdfScan{budget: pdfMaxInflate, raw: b}
	s.lex(b, 0)
	return s.res
}

func isPDFDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return isPDFSpace(c)
}

func isPDFSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == 0
}

// name decodes a name token starting after '/': #xx escapes.
func pdfName(b []byte, i int) (string, int) {
	var out []byte
	for i < len(b) && !isPDFDelim(b[i]) {
		c := b[i]
		if c == '#' && i+2 < len(b) {
			if v, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 3
				continue
			}
		}
		out = append(out, c)
		i++
		if len(out) > 256 {
			for i < len(b) && !isPDFDelim(b[i]) {
				i++
			}
			break
		}
	}
	return string(out), i
}

// skipString skips a literal string starting after '('.
func skipString(b []byte, i int) int {
	depth := 1
	for i < len(b) {
		switch b[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
		i++
	}
	return i
}

func (s *pdfScan) lex(b []byte, depth int) {
	// names seen since the last stream or "obj": the current object's
	// dictionary, to decide how to read a stream.
	var objNames []string
	i := 0
	for i < len(b) {
		c := b[i]
		switch {
		case c == '%':
			for i < len(b) && b[i] != '\n' && b[i] != '\r' {
				i++
			}
		case c == '(':
			i = skipString(b, i+1)
		case c == '<' && i+1 < len(b) && b[i+1] == '<':
			i += 2
		case c == '<':
			j := bytes.IndexByte(b[i:], '>')
			if j < 0 {
				return
			}
			i += j + 1
		case c == '/':
			var n string
			n, i = pdfName(b, i+1)
			s.name(n, b, i)
			objNames = append(objNames, n)
			if len(objNames) > 64 {
				objNames = objNames[32:]
			}
		case isPDFDelim(c):
			i++
		default:
			j := i
			for j < len(b) && !isPDFDelim(b[j]) {
				j++
			}
			word := b[i:j]
			i = j
			switch string(word) {
			case "obj":
				objNames = objNames[:0]
			case "stream":
				i = s.stream(b, i, objNames, depth)
				objNames = objNames[:0]
			}
		}
	}
}

// name records what a name token means; b[i:] is what follows it.
func (s *pdfScan) name(n string, b []byte, i int) {
	switch n {
	case "JavaScript", "JS":
		s.res.JavaScript = true
	case "Launch":
		s.res.Launch = true
	case "EmbeddedFile", "EmbeddedFiles":
		s.res.EmbeddedFile = true
	case "Encrypt":
		s.res.Encrypted = true
	case "OpenAction", "AA":
		if n == "OpenAction" {
			s.res.OpenAction = true
		}
		if s.res.AutoAction != "" || s.lookups >= 64 {
			return
		}
		s.lookups++
		if t := s.actionType(b[i:]); t != "" {
			s.res.AutoAction = n + " " + t
		}
	}
}

// actionType reads the value after /OpenAction or /AA: an inline
// dictionary or an indirect reference "n g R" to an object in the raw
// file, and returns the first risky action type (/S /Type) in it.
func (s *pdfScan) actionType(v []byte) string {
	v = bytes.TrimLeft(v, " \t\r\n\f\x00")
	var obj []byte
	switch {
	case bytes.HasPrefix(v, []byte("<<")):
		obj = v[:min(len(v), 4096)]
	default:
		// n g R
		f := bytes.Fields(v[:min(len(v), 40)])
		if len(f) < 3 || !bytes.HasPrefix(f[2], []byte("R")) {
			return ""
		}
		if _, err := strconv.Atoi(string(f[0])); err != nil {
			return ""
		}
		key := append(append(append([]byte{}, f[0]...), ' '), f[1]...)
		key = append(key, " obj"...)
		j := bytes.Index(s.raw, key)
		if j < 0 {
			return ""
		}
		obj = s.raw[j+len(key):]
		if k := bytes.Index(obj, []byte("endobj")); k >= 0 {
			obj = obj[:k]
		}
		obj = obj[:min(len(obj), 4096)]
	}
	i := 0
	prev := ""
	for i < len(obj) {
		if obj[i] == '/' {
			var n string
			n, i = pdfName(obj, i+1)
			if prev == "S" && riskyActionTypes[n] {
				return n
			}
			prev = n
			continue
		}
		if obj[i] == '(' {
			i = skipString(obj, i+1)
			continue
		}
		i++
	}
	return ""
}

// stream handles the data of a stream whose keyword ended at b[i], and
// returns where to go on lexing (after "endstream").
func (s *pdfScan) stream(b []byte, i int, dict []string, depth int) int {
	if i < len(b) && b[i] == '\r' {
		i++
	}
	if i < len(b) && b[i] == '\n' {
		i++
	}
	end := bytes.Index(b[i:], []byte("endstream"))
	if end < 0 {
		return len(b)
	}
	data := b[i : i+end]
	next := i + end + len("endstream")
	s.streams++
	if depth >= pdfMaxDepth || s.streams > pdfMaxStreams || s.budget <= 0 {
		return next
	}
	flate, other, image := false, false, false
	for _, n := range dict {
		switch n {
		case "FlateDecode", "Fl":
			flate = true
		case "ASCIIHexDecode", "AHx", "ASCII85Decode", "A85", "LZWDecode", "LZW", "RunLengthDecode", "RL",
			"CCITTFaxDecode", "CCF", "DCTDecode", "DCT", "JBIG2Decode", "JPXDecode", "Crypt":
			other = true
		case "Image":
			image = true
		}
	}
	var plain []byte
	switch {
	case image:
		return next
	case flate && !other:
		zr, err := zlib.NewReader(bytes.NewReader(data))
		if err != nil {
			return next
		}
		var buf bytes.Buffer
		n, _ := io.Copy(&buf, io.LimitReader(zr, int64(s.budget)))
		s.budget -= int(n)
		plain = buf.Bytes()
	case !flate && !other:
		plain = data
	default:
		return next
	}
	s.lex(plain, depth+1)
	return next
}
