package mailrelay

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"fmt"
	"mime"
	pathpkg "path"
	"strings"
	"unicode/utf8"

	"github.com/jichitai/seccloud/mailrelay/internal/archive"
	"github.com/jichitai/seccloud/mailrelay/internal/mailparse"
)

// Executable and script file types (extensions, lower case).
var riskyExt = map[string]bool{
	"exe": true, "com": true, "scr": true, "pif": true, "bat": true, "cmd": true, "vbs": true, "vbe": true, "js": true,
	"jse": true, "wsf": true, "wsh": true, "hta": true, "msi": true, "msp": true, "mst": true, "ps1": true, "psm1": true,
	"psd1": true, "jar": true, "lnk": true, "reg": true, "cpl": true, "dll": true, "sys": true, "iso": true, "img": true,
	"vhd": true, "vhdx": true, "application": true, "gadget": true, "msc": true, "scf": true, "inf": true, "chm": true,
	"appx": true, "msix": true, "appref-ms": true, "settingcontent-ms": true, "xll": true, "one": true, "sh": true,
	"elf": true, "apk": true, "app": true, "dmg": true, "pkg": true, "url": true, "svg": false,
}

// Macro-enabled Office types.
var macroExt = map[string]bool{"docm": true, "dotm": true, "xlsm": true, "xltm": true, "xlam": true, "pptm": true,
	"potm": true, "ppam": true, "ppsm": true, "sldm": true, "xlsb": true}

// riskyAttachment returns why the message breaks the attachment policy,
// or "".
func riskyAttachment(m *mailparse.Message) string {
	for i := range m.Parts {
		p := &m.Parts[i]
		if why := riskyFile(p.Filename, p.MediaType, p.Body, 0); why != "" {
			return why
		}
	}
	return ""
}

func extOf(name string) string {
	return strings.ToLower(strings.TrimPrefix(pathpkg.Ext(strings.TrimRight(name, ". ")), "."))
}

func riskyFile(name, mediaType string, body []byte, depth int) string {
	shown := name
	if shown == "" {
		shown = mediaType
	}
	ext := extOf(name)
	switch {
	case riskyExt[ext]:
		return fmt.Sprintf("executable or script attachment %q", shown)
	case macroExt[ext]:
		return fmt.Sprintf("macro-enabled Office attachment %q", shown)
	case bytes.HasPrefix(body, []byte("MZ")) && len(body) > 64:
		return fmt.Sprintf("Windows executable attachment %q", shown)
	case bytes.HasPrefix(body, []byte("\x7fELF")):
		return fmt.Sprintf("ELF executable attachment %q", shown)
	case mediaType == "application/x-msdownload" || mediaType == "application/x-msdos-program" || mediaType == "application/x-sh" ||
		mediaType == "application/hta" || mediaType == "application/x-ms-shortcut" || mediaType == "application/vnd.ms-excel.sheet.macroenabled.12" ||
		mediaType == "application/vnd.ms-word.document.macroenabled.12":
		return fmt.Sprintf("executable or macro content type %s (%q)", mediaType, shown)
	}
	// OLE2 compound documents (.doc, .xls, .ppt): macros or encryption.
	if bytes.HasPrefix(body, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")) {
		if bytes.Contains(body, []byte("_\x00V\x00B\x00A\x00_\x00P\x00R\x00O\x00J\x00E\x00C\x00T")) || bytes.Contains(body, []byte("V\x00B\x00A\x00")) {
			return fmt.Sprintf("Office attachment with macros %q", shown)
		}
		if bytes.Contains(body, []byte("E\x00n\x00c\x00r\x00y\x00p\x00t\x00e\x00d\x00P\x00a\x00c\x00k\x00a\x00g\x00e")) {
			return fmt.Sprintf("encrypted Office attachment %q", shown)
		}
	}
	if f := archive.Detect(body); f != "" {
		info, err := archive.Inspect(body)
		if err != nil {
			return ""
		}
		if info.HeadersEncrypted {
			return fmt.Sprintf("encrypted archive %q (%s, file list encrypted)", shown, f)
		}
		if info.Encrypted {
			return fmt.Sprintf("encrypted archive %q (%s)", shown, f)
		}
		for _, n := range info.Names {
			inner := extOf(n)
			if riskyExt[inner] || macroExt[inner] {
				return fmt.Sprintf("archive %q contains %q", shown, n)
			}
		}
		return ""
	}
	if archive.IsPDF(body) {
		p := archive.InspectPDF(body)
		switch {
		case p.JavaScript:
			return fmt.Sprintf("PDF attachment with JavaScript %q", shown)
		case p.Launch:
			return fmt.Sprintf("PDF attachment with a launch action %q", shown)
		case p.AutoAction != "":
			return fmt.Sprintf("PDF attachment with an automatic action (%s) %q", p.AutoAction, shown)
		}
		return ""
	}
	if bytes.HasPrefix(body, []byte("PK\x03\x04")) && depth < 2 {
		zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
		if err != nil {
			return ""
		}
		for i, f := range zr.File {
			if i > 1000 {
				break
			}
			if f.Flags&1 != 0 {
				return fmt.Sprintf("encrypted archive %q", shown)
			}
			if strings.EqualFold(pathpkg.Base(f.Name), "vbaProject.bin") {
				return fmt.Sprintf("Office attachment with macros %q", shown)
			}
			inner := extOf(f.Name)
			if riskyExt[inner] || macroExt[inner] {
				return fmt.Sprintf("archive %q contains %q", shown, f.Name)
			}
			if (inner == "zip" || inner == "rar" || inner == "7z" || inner == "pdf") && f.UncompressedSize64 < 8<<20 {
				rc, err := f.Open()
				if err != nil {
					continue
				}
				var b bytes.Buffer
				_, _ = b.ReadFrom(rc)
				rc.Close()
				if why := riskyFile(f.Name, "application/zip", b.Bytes(), depth+1); why != "" {
					return fmt.Sprintf("archive %q: %s", shown, why)
				}
			}
		}
	}
	return ""
}

// tagSubject puts tag in front of the message's Subject (adding one when
// there is none). The tag is written as a MIME encoded word when it is
// not ASCII.
func tagSubject(data []byte, tag string) []byte {
	enc := tag
	if !isASCII(tag) {
		enc = mime.BEncoding.Encode("UTF-8", strings.TrimRight(tag, " ")) + " "
	}
	hdr, _ := mailparse.SplitHeader(data)
	h := data[:len(hdr)]
	i := 0
	for i < len(h) {
		j := bytes.IndexByte(h[i:], '\n')
		line := h[i:]
		if j >= 0 {
			line = h[i : i+j+1]
		}
		if len(line) > 8 && strings.EqualFold(string(line[:8]), "subject:") {
			v := line[8:]
			v = bytes.TrimLeft(v, " \t")
			// Already tagged (a resent message)?
			if bytes.HasPrefix(v, []byte(enc)) {
				return data
			}
			pos := i + len(line) - len(v)
			out := make([]byte, 0, len(data)+len(enc))
			out = append(out, data[:pos]...)
			out = append(out, enc...)
			return append(out, data[pos:]...)
		}
		if j < 0 {
			break
		}
		i += j + 1
	}
	out := make([]byte, 0, len(data)+len(enc)+12)
	out = append(out, "Subject: "...)
	out = append(out, strings.TrimRight(enc, " ")...)
	out = append(out, "\r\n"...)
	return append(out, data...)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// headerEnd returns the offset of the empty line that ends the header
// (or len(data)).
func headerEnd(data []byte) int {
	if i := bytes.Index(data, []byte("\r\n\r\n")); i >= 0 {
		return i + 2
	}
	return len(data)
}

// sanitize builds the メール無害化 version of a message: the header
// without its MIME fields, one text/plain UTF-8 part holding a notice,
// the text (HTML converted to text) with URLs defanged, and the list of
// the attachments removed. The original stays in the quarantine under
// the same id.
func sanitize(data []byte, m *mailparse.Message, id string) []byte {
	hdr, _ := mailparse.SplitHeader(data)
	if !mailparse.HasHeader(data) {
		hdr = nil
	}
	var out bytes.Buffer
	// Copy the header fields, dropping MIME fields (with their
	// continuations) and any line that is not a field.
	skip := true
	for _, line := range bytes.Split(hdr, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if !skip {
				out.Write(line)
				out.WriteString("\r\n")
			}
			continue
		}
		name, _, ok := bytes.Cut(line, []byte(":"))
		l := strings.ToLower(string(name))
		skip = !ok || !mailparse.IsFieldName(name) || strings.HasPrefix(l, "content-") || l == "mime-version"
		if !skip {
			out.Write(line)
			out.WriteString("\r\n")
		}
	}
	out.WriteString("X-Seccloud-Sanitized: yes; original-id=" + id + "\r\n")
	out.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	var body strings.Builder
	body.WriteString("【無害化済み】このメールは安全のためテキストに変換され、リンクは無効化、添付ファイルは削除されています。原本が必要な場合は管理者にお問い合わせください（ID: " + id + "）。\n")
	body.WriteString("[Sanitised] This message was converted to text, its links disabled and its attachments removed. Ask your administrator for the original (ID: " + id + ").\n\n")
	text := m.Text()
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	body.WriteString(mailparse.Defang(text))
	var removed []string
	for i := range m.Parts {
		p := &m.Parts[i]
		if p.Attachment || !p.IsText() {
			name := p.Filename
			if name == "" {
				name = p.MediaType
			}
			removed = append(removed, fmt.Sprintf("%s (%d bytes)", name, len(p.Body)))
		}
	}
	if len(removed) > 0 {
		body.WriteString("\n\n――――――――――\n削除された添付ファイル / Attachments removed:\n")
		for _, r := range removed {
			body.WriteString("- " + mailparse.Defang(r) + "\n")
		}
	}
	enc := base64.StdEncoding.EncodeToString([]byte(body.String()))
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
	return out.Bytes()
}
