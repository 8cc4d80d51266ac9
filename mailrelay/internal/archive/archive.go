// Package archive reads just enough of RAR (4 and 5) and 7z archives and
// of PDF documents to tell the relay's attachment policy whether they
// are encrypted, which file names they hold, and whether a PDF carries
// active content (JavaScript, launch actions). Nothing is extracted.
//
// Every parser works on an in-memory attachment, bounds its work (entries,
// header sizes, decompressed bytes) and never panics on malformed input
// (each one has a native fuzz target). Its functions are safe for
// concurrent use.
package archive

import (
	"bytes"
	"errors"
)

// Format is an archive or document format.
type Format string

// The formats.
const (
	RAR4     Format = "rar4"
	RAR5     Format = "rar5"
	SevenZip Format = "7z"
)

// Info is what was learned about an archive.
type Info struct {
	Format Format
	// Encrypted is true when entries' data is encrypted (a password is
	// needed to read them) or the headers themselves are.
	Encrypted bool
	// HeadersEncrypted is true when the file list itself is encrypted
	// (rar -hp, 7z -mhe): Names is then empty.
	HeadersEncrypted bool
	// Names are the entry names, in archive order (at most MaxEntries).
	Names []string
	// Partial is true when the archive ended early or was malformed after
	// some entries were read (what was read is still reported).
	Partial bool
}

// MaxEntries bounds the entries read from one archive.
const MaxEntries = 10000

// ErrFormat means the data is not an archive of the expected format, or
// is too damaged to say anything.
var ErrFormat = errors.New("archive: unrecognised or malformed archive")

var (
	rar4Sig  = []byte("Rar!\x1a\x07\x00")
	rar5Sig  = []byte("Rar!\x1a\x07\x01\x00")
	sevenSig = []byte("7z\xbc\xaf\x27\x1c")
)

// Detect returns the archive format of b from its signature, or "".
func Detect(b []byte) Format {
	switch {
	case bytes.HasPrefix(b, rar5Sig):
		return RAR5
	case bytes.HasPrefix(b, rar4Sig):
		return RAR4
	case bytes.HasPrefix(b, sevenSig):
		return SevenZip
	}
	return ""
}

// Inspect reads the archive in b (RAR4, RAR5 or 7z, by signature).
func Inspect(b []byte) (Info, error) {
	switch Detect(b) {
	case RAR4:
		return inspectRAR4(b)
	case RAR5:
		return inspectRAR5(b)
	case SevenZip:
		return inspect7z(b)
	}
	return Info{}, ErrFormat
}
