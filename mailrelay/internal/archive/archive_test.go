package archive

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type entry struct {
	name      string
	data      []byte
	encrypted bool
}

// rar4 builds a RAR 4.x archive of stored entries: marker, main header
// (MHD_PASSWORD when hdrPwd), one file header + data per entry, end of
// archive; header CRCs as RAR computes them (low 16 bits of CRC-32).
func rar4(hdrPwd bool, entries ...entry) []byte {
	var out bytes.Buffer
	out.Write(rar4Sig)
	block := func(typ byte, flags uint16, body []byte) {
		h := make([]byte, 7, 7+len(body))
		h[2] = typ
		binary.LittleEndian.PutUint16(h[3:], flags)
		binary.LittleEndian.PutUint16(h[5:], uint16(7+len(body)))
		h = append(h, body...)
		binary.LittleEndian.PutUint16(h[0:], uint16(crc32.ChecksumIEEE(h[2:])))
		out.Write(h)
	}
	var mflags uint16
	if hdrPwd {
		mflags = rar4MainPwd
	}
	block(rar4Main, mflags, make([]byte, 6))
	if hdrPwd {
		// The rest would be encrypted: random-looking bytes.
		out.Write(bytes.Repeat([]byte{0xa5, 0x5a}, 32))
		return out.Bytes()
	}
	for _, e := range entries {
		flags := uint16(rar4Long)
		if e.encrypted {
			flags |= rar4FilePwd
		}
		body := make([]byte, 25, 25+len(e.name))
		binary.LittleEndian.PutUint32(body[0:], uint32(len(e.data))) // PACK_SIZE
		binary.LittleEndian.PutUint32(body[4:], uint32(len(e.data))) // UNP_SIZE
		body[8] = 3                                                  // HOST_OS unix
		binary.LittleEndian.PutUint32(body[9:], crc32.ChecksumIEEE(e.data))
		binary.LittleEndian.PutUint32(body[13:], 0x5b2e0000) // FTIME
		body[17] = 29                                        // UNP_VER
		body[18] = 0x30                                      // METHOD store
		binary.LittleEndian.PutUint16(body[19:], uint16(len(e.name)))
		binary.LittleEndian.PutUint32(body[21:], 0o100644)
		body = append(body, e.name...)
		block(rar4File, flags, body)
		out.Write(e.data)
	}
	block(rar4End, 0x4000, nil)
	return out.Bytes()
}

func putVint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// rar5 builds a RAR 5.0 archive of stored entries (an encryption record
// in the extra area of encrypted ones), or one whose headers are
// encrypted (archive encryption header) when hdrPwd.
func rar5(hdrPwd bool, entries ...entry) []byte {
	var out bytes.Buffer
	out.Write(rar5Sig)
	block := func(fields []byte) {
		hs := putVint(nil, uint64(len(fields)))
		h := append(hs, fields...)
		var crc [4]byte
		binary.LittleEndian.PutUint32(crc[:], crc32.ChecksumIEEE(h))
		out.Write(crc[:])
		out.Write(h)
	}
	if hdrPwd {
		f := putVint(nil, rar5Crypt)
		f = putVint(f, 0)                  // header flags
		f = putVint(f, 0)                  // encryption version (AES-256)
		f = putVint(f, 0)                  // encryption flags
		f = append(f, 15)                  // KDF count
		f = append(f, make([]byte, 16)...) // salt
		block(f)
		out.Write(bytes.Repeat([]byte{0x3c}, 48))
		return out.Bytes()
	}
	main := putVint(nil, rar5Main)
	main = putVint(main, 0)
	main = putVint(main, 0) // archive flags
	block(main)
	for _, e := range entries {
		var extra []byte
		if e.encrypted {
			rec := putVint(nil, 1)                 // type: file encryption
			rec = putVint(rec, 0)                  // version AES-256
			rec = putVint(rec, 0)                  // flags
			rec = append(rec, 15)                  // KDF count
			rec = append(rec, make([]byte, 32)...) // salt + IV
			extra = append(putVint(nil, uint64(len(rec))), rec...)
		}
		flags := uint64(2)
		if len(extra) > 0 {
			flags |= 1
		}
		f := putVint(nil, rar5File)
		f = putVint(f, flags)
		if len(extra) > 0 {
			f = putVint(f, uint64(len(extra)))
		}
		f = putVint(f, uint64(len(e.data)))
		f = putVint(f, 0x04) // file flags: CRC32 present
		f = putVint(f, uint64(len(e.data)))
		f = putVint(f, 0o644)
		f = binary.LittleEndian.AppendUint32(f, crc32.ChecksumIEEE(e.data))
		f = putVint(f, 0) // compression: store, version 0
		f = putVint(f, 1) // host OS unix
		f = putVint(f, uint64(len(e.name)))
		f = append(f, e.name...)
		f = append(f, extra...)
		block(f)
		out.Write(e.data)
	}
	end := putVint(nil, rar5End)
	end = putVint(end, 0)
	end = putVint(end, 0)
	block(end)
	return out.Bytes()
}

// lsar lists an archive with Debian's unar package, when installed, so
// the hand-built archives are known to be what real readers accept.
func lsar(t *testing.T, b []byte) (string, bool) {
	bin, err := exec.LookPath("lsar")
	if err != nil {
		return "", false
	}
	p := filepath.Join(t.TempDir(), "a.rar")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	out, err := exec.Command(bin, "-j", p).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return string(out), true
}

func TestRAR(t *testing.T) {
	readme := entry{name: "readme.txt", data: []byte("hello\n")}
	exe := entry{name: "bin\\setup.exe", data: append([]byte("MZ"), make([]byte, 14)...)}
	secret := entry{name: "secret.docx", data: bytes.Repeat([]byte{7}, 16), encrypted: true}
	cases := []struct {
		name      string
		b         []byte
		format    Format
		names     []string
		encrypted bool
		hdrs      bool
	}{
		{"rar4 plain", rar4(false, readme, exe), RAR4, []string{"readme.txt", "bin/setup.exe"}, false, false},
		{"rar4 encrypted entry", rar4(false, readme, secret), RAR4, []string{"readme.txt", "secret.docx"}, true, false},
		{"rar4 encrypted headers", rar4(true), RAR4, nil, true, true},
		{"rar5 plain", rar5(false, readme, exe), RAR5, []string{"readme.txt", "bin/setup.exe"}, false, false},
		{"rar5 encrypted entry", rar5(false, readme, secret), RAR5, []string{"readme.txt", "secret.docx"}, true, false},
		{"rar5 encrypted headers", rar5(true), RAR5, nil, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info, err := Inspect(tc.b)
			require.NoError(t, err)
			assert.Equal(t, tc.format, info.Format)
			assert.Equal(t, tc.names, info.Names)
			assert.Equal(t, tc.encrypted, info.Encrypted)
			assert.Equal(t, tc.hdrs, info.HeadersEncrypted)
			assert.False(t, info.Partial)
			if !tc.hdrs {
				if out, ok := lsar(t, tc.b); ok {
					for _, n := range tc.names {
						assert.Contains(t, out, path.Base(n))
					}
					assert.Equal(t, tc.encrypted, strings.Contains(out, `"XADIsEncrypted": 1`), out)
				}
			}
			// Truncated anywhere: never an error or panic, and never a
			// name that was not there.
			for cut := 0; cut < len(tc.b); cut += 3 {
				i, _ := Inspect(tc.b[:cut])
				for _, n := range i.Names {
					assert.Contains(t, tc.names, n)
				}
			}
		})
	}
}

// sevenZip builds an archive with Debian's 7-Zip (7zz or 7z), or skips.
func sevenZip(t *testing.T, args []string, files map[string][]byte) []byte {
	t.Helper()
	var bin string
	for _, b := range []string{"7zz", "7z", "7za"} {
		if p, err := exec.LookPath(b); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("7-Zip not installed (Debian package 7zip); skipping the 7z archives")
	}
	dir := t.TempDir()
	var names []string
	for n, d := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), d, 0o600))
		names = append(names, n)
	}
	cmd := exec.Command(bin, append(append([]string{"a", "-bd", "out.7z"}, args...), names...)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	b, err := os.ReadFile(filepath.Join(dir, "out.7z"))
	require.NoError(t, err)
	return b
}

func Test7z(t *testing.T) {
	files := map[string][]byte{"readme.txt": []byte("hello\n"), "tools/setup.exe": append([]byte("MZ"), make([]byte, 100)...)}
	cases := []struct {
		name            string
		args            []string
		encrypted, hdrs bool
	}{
		{"lzma, header compressed", nil, false, false},
		{"lzma2", []string{"-m0=lzma2"}, false, false},
		{"header not compressed", []string{"-mhc=off"}, false, false},
		{"stored", []string{"-mx=0"}, false, false},
		{"encrypted data", []string{"-pSecret"}, true, false},
		{"encrypted headers", []string{"-pSecret", "-mhe=on"}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := sevenZip(t, tc.args, files)
			info, err := Inspect(b)
			require.NoError(t, err)
			assert.Equal(t, SevenZip, info.Format)
			assert.False(t, info.Partial)
			assert.Equal(t, tc.encrypted, info.Encrypted)
			assert.Equal(t, tc.hdrs, info.HeadersEncrypted)
			if !tc.hdrs {
				assert.ElementsMatch(t, []string{"readme.txt", "tools/setup.exe"}, info.Names)
			}
			for cut := 0; cut < len(b); cut += 5 {
				Inspect(b[:cut])
			}
		})
	}
}

// pdfDoc builds a PDF with the given objects (bodies of "n 0 obj"), a
// cross-reference table and a trailer whose /Root is object 1.
func pdfDoc(objs ...string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offs := make([]int, len(objs))
	for i, o := range objs {
		offs[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	x := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, o := range offs {
		fmt.Fprintf(&b, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, x)
	return b.Bytes()
}

func flateStream(dict, data string) string {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write([]byte(data))
	w.Close()
	return fmt.Sprintf("<< %s /Filter /FlateDecode /Length %d >>\nstream\n%s\nendstream", dict, z.Len(), z.Bytes())
}

func TestPDF(t *testing.T) {
	pages := "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
	page := "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>"
	content := flateStream("", "BT /F1 12 Tf 72 712 Td (Use /JavaScript and /Launch carefully) Tj ET")
	cases := []struct {
		name  string
		pdf   []byte
		check func(t *testing.T, p PDF)
	}{
		{"plain, the words only in page text", pdfDoc("<< /Type /Catalog /Pages 2 0 R >>", pages, page, content),
			func(t *testing.T, p PDF) { assert.Equal(t, PDF{}, p) }},
		{"open action is a destination", pdfDoc("<< /Type /Catalog /Pages 2 0 R /OpenAction [3 0 R /Fit] >>", pages, page, content),
			func(t *testing.T, p PDF) {
				assert.True(t, p.OpenAction)
				assert.Empty(t, p.AutoAction)
				assert.False(t, p.JavaScript)
			}},
		{"open action JavaScript inline", pdfDoc("<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript /JS (app.alert\\(1\\)) >> >>", pages, page, content),
			func(t *testing.T, p PDF) {
				assert.True(t, p.JavaScript)
				assert.Equal(t, "OpenAction JavaScript", p.AutoAction)
			}},
		{"obfuscated name", pdfDoc("<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", pages, page, content, "<< /S /J#61vaScript /J#53 (x) >>"),
			func(t *testing.T, p PDF) {
				assert.True(t, p.JavaScript)
				assert.Equal(t, "OpenAction JavaScript", p.AutoAction)
			}},
		{"launch action by reference", pdfDoc("<< /Type /Catalog /Pages 2 0 R /OpenAction 5 0 R >>", pages, page, content, "<< /S /Launch /F (cmd.exe) >>"),
			func(t *testing.T, p PDF) {
				assert.True(t, p.Launch)
				assert.Equal(t, "OpenAction Launch", p.AutoAction)
			}},
		{"page opens a URI automatically", pdfDoc("<< /Type /Catalog /Pages 2 0 R >>", pages,
			"<< /Type /Page /Parent 2 0 R /AA << /O << /S /URI /URI (http://x.example/) >> >> >>", content),
			func(t *testing.T, p PDF) { assert.Equal(t, "AA URI", p.AutoAction) }},
		{"JavaScript hidden in an object stream", pdfDoc("<< /Type /Catalog /Pages 2 0 R /Names 6 0 R >>", pages, page, content,
			flateStream("/Type /ObjStm /N 1 /First 4", "6 0 << /JavaScript << /Names [(a) 7 0 R] >> >>")),
			func(t *testing.T, p PDF) { assert.True(t, p.JavaScript) }},
		{"embedded file, encrypted", pdfDoc("<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> >>", pages, page, content, "<< /Encrypt 9 0 R >>"),
			func(t *testing.T, p PDF) {
				assert.True(t, p.EmbeddedFile)
				assert.True(t, p.Encrypted)
				assert.False(t, p.JavaScript)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.True(t, IsPDF(tc.pdf))
			tc.check(t, InspectPDF(tc.pdf))
			for cut := 0; cut < len(tc.pdf); cut += 7 {
				InspectPDF(tc.pdf[:cut])
			}
		})
	}
}

func seeds(f *testing.F) {
	f.Add(rar4(false, entry{name: "a.exe", data: []byte("MZ")}, entry{name: "b", data: []byte("x"), encrypted: true}))
	f.Add(rar4(true))
	f.Add(rar5(false, entry{name: "a.exe", data: []byte("MZ")}, entry{name: "b", data: []byte("x"), encrypted: true}))
	f.Add(rar5(true))
	f.Add([]byte("7z\xbc\xaf\x27\x1c\x00\x04" + strings.Repeat("\x00", 26)))
	f.Add(pdfDoc("<< /OpenAction 2 0 R >>", "<< /S /JavaScript /JS (x) >>", flateStream("/Type /ObjStm", "<< /Launch 1 >>")))
}

func FuzzInspect(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := Inspect(b)
		if err != nil && Detect(b) != "" {
			t.Fatalf("recognised format %q gave an error: %v", Detect(b), err)
		}
		if len(info.Names) > MaxEntries {
			t.Fatalf("%d names", len(info.Names))
		}
		if info.HeadersEncrypted && !info.Encrypted {
			t.Fatal("headers encrypted but not encrypted")
		}
	})
}

func FuzzInspectPDF(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p := InspectPDF(b)
		if p.AutoAction != "" && !strings.HasPrefix(p.AutoAction, "OpenAction ") && !strings.HasPrefix(p.AutoAction, "AA ") {
			t.Fatalf("auto action %q", p.AutoAction)
		}
	})
}
