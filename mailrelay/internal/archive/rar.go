package archive

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"
)

// RAR 4.x (RAR 1.5–4 format): a sequence of blocks, each
//
//	HEAD_CRC u16, HEAD_TYPE u8, HEAD_FLAGS u16, HEAD_SIZE u16,
//	[ADD_SIZE u32 when HEAD_FLAGS & 0x8000], ...
//
// The main header (0x73) has MHD_PASSWORD (0x0080) when the block
// headers are encrypted; a file header (0x74) has LHD_PASSWORD (0x0004)
// when its data is, and holds PACK_SIZE u32, UNP_SIZE u32, HOST_OS u8,
// FILE_CRC u32, FTIME u32, UNP_VER u8, METHOD u8, NAME_SIZE u16, ATTR
// u32, [HIGH_PACK_SIZE u32, HIGH_UNP_SIZE u32 when LHD_LARGE 0x0100],
// FILE_NAME. The next block starts HEAD_SIZE (+ the packed size) later.
const (
	rar4Main    = 0x73
	rar4File    = 0x74
	rar4End     = 0x7b
	rar4Long    = 0x8000
	rar4MainPwd = 0x0080
	rar4FilePwd = 0x0004
	rar4Large   = 0x0100
	rar4Unicode = 0x0200
)

func inspectRAR4(b []byte) (Info, error) {
	info := Info{Format: RAR4}
	pos := len(rar4Sig)
	for n := 0; n < MaxEntries*2; n++ {
		if pos+7 > len(b) {
			info.Partial = pos != len(b)
			return info, nil
		}
		typ := b[pos+2]
		flags := binary.LittleEndian.Uint16(b[pos+3:])
		size := int(binary.LittleEndian.Uint16(b[pos+5:]))
		if size < 7 || pos+size > len(b) {
			info.Partial = true
			return info, nil
		}
		hdr := b[pos : pos+size]
		var add uint64
		if flags&rar4Long != 0 && size >= 11 {
			add = uint64(binary.LittleEndian.Uint32(hdr[7:]))
		}
		switch typ {
		case rar4Main:
			if flags&rar4MainPwd != 0 {
				info.Encrypted, info.HeadersEncrypted = true, true
				// Everything after is encrypted.
				return info, nil
			}
		case rar4File:
			if size < 32 {
				info.Partial = true
				return info, nil
			}
			if flags&rar4FilePwd != 0 {
				info.Encrypted = true
			}
			nameLen := int(binary.LittleEndian.Uint16(hdr[26:]))
			off := 32
			if flags&rar4Large != 0 {
				if size < 40 {
					info.Partial = true
					return info, nil
				}
				add |= uint64(binary.LittleEndian.Uint32(hdr[32:])) << 32
				off = 40
			}
			if off+nameLen > size {
				info.Partial = true
				return info, nil
			}
			name := hdr[off : off+nameLen]
			if flags&rar4Unicode != 0 {
				// "ASCII part\0encoded Unicode": the first part is the
				// name in the legacy code page; the encoded part would
				// need RAR's own decoder. The ASCII part keeps the
				// extension in practice; fall back to the raw bytes.
				if i := strings.IndexByte(string(name), 0); i >= 0 {
					name = name[:i]
				}
			}
			if len(info.Names) < MaxEntries {
				info.Names = append(info.Names, cleanName(string(name)))
			}
		case rar4End:
			return info, nil
		}
		next := uint64(pos) + uint64(size) + add
		if next > uint64(len(b)) {
			// The data of the last entry is cut off: what we read stands.
			info.Partial = true
			return info, nil
		}
		pos = int(next)
	}
	info.Partial = true
	return info, nil
}

// RAR 5.0: after the signature, blocks of
//
//	CRC32 u32, header size vint, header type vint, header flags vint,
//	[extra area size vint if flags & 1], [data size vint if flags & 2],
//	type-specific fields, extra area
//
// Header size counts from the header type to the end of the extra area.
// Type 4 (archive encryption header) means everything after it is
// encrypted. A file header (2) holds file flags, unpacked size,
// attributes, [mtime u32 if file flags & 2], [data CRC u32 if & 4],
// compression info, host OS, name length, name (UTF-8); its extra area
// records (size vint, type vint, data) include type 1, file encryption.
const (
	rar5Main    = 1
	rar5File    = 2
	rar5Service = 3
	rar5Crypt   = 4
	rar5End     = 5
)

// vint reads a RAR5 variable-length integer at b[*p].
func vint(b []byte, p *int) (uint64, bool) {
	var v uint64
	for i := 0; i < 10; i++ {
		if *p >= len(b) {
			return 0, false
		}
		c := b[*p]
		*p++
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, true
		}
	}
	return 0, false
}

func inspectRAR5(b []byte) (Info, error) {
	info := Info{Format: RAR5}
	pos := len(rar5Sig)
	for n := 0; n < MaxEntries*2; n++ {
		if pos == len(b) {
			return info, nil
		}
		p := pos + 4
		hsize, ok := vint(b, &p)
		if !ok || hsize == 0 || hsize > 2<<20 || uint64(p)+hsize > uint64(len(b)) {
			info.Partial = true
			return info, nil
		}
		end := p + int(hsize)
		h := b[:end]
		typ, ok1 := vint(h, &p)
		flags, ok2 := vint(h, &p)
		if !ok1 || !ok2 {
			info.Partial = true
			return info, nil
		}
		var extraSize, dataSize uint64
		if flags&1 != 0 {
			if extraSize, ok = vint(h, &p); !ok || extraSize > hsize {
				info.Partial = true
				return info, nil
			}
		}
		if flags&2 != 0 {
			if dataSize, ok = vint(h, &p); !ok {
				info.Partial = true
				return info, nil
			}
		}
		switch typ {
		case rar5Crypt:
			info.Encrypted, info.HeadersEncrypted = true, true
			return info, nil
		case rar5File, rar5Service:
			name, enc, ok := rar5FileHeader(h, p, end, int(extraSize))
			if !ok {
				info.Partial = true
				return info, nil
			}
			if enc {
				info.Encrypted = true
			}
			if typ == rar5File && len(info.Names) < MaxEntries {
				info.Names = append(info.Names, cleanName(name))
			}
		case rar5End:
			return info, nil
		}
		next := uint64(end) + dataSize
		if next > uint64(len(b)) {
			info.Partial = true
			return info, nil
		}
		pos = int(next)
	}
	info.Partial = true
	return info, nil
}

// rar5FileHeader reads the name of a file or service header whose
// type-specific fields start at h[p] and end at h[end] (extra area
// included), and whether its extra area has an encryption record.
func rar5FileHeader(h []byte, p, end, extraSize int) (name string, encrypted bool, ok bool) {
	fflags, ok := vint(h, &p)
	if !ok {
		return "", false, false
	}
	if _, ok = vint(h, &p); !ok { // unpacked size
		return "", false, false
	}
	if _, ok = vint(h, &p); !ok { // attributes
		return "", false, false
	}
	if fflags&2 != 0 {
		p += 4
	}
	if fflags&4 != 0 {
		p += 4
	}
	if _, ok = vint(h, &p); !ok { // compression info
		return "", false, false
	}
	if _, ok = vint(h, &p); !ok { // host OS
		return "", false, false
	}
	nlen, ok := vint(h, &p)
	if !ok || nlen > uint64(end-p) {
		return "", false, false
	}
	name = string(h[p : p+int(nlen)])
	// Extra area: the last extraSize bytes of the header.
	if extraSize > 0 && extraSize <= end-p {
		x := h[end-extraSize : end]
		q := 0
		for q < len(x) {
			rsize, ok := vint(x, &q)
			if !ok || rsize == 0 || rsize > uint64(len(x)-q) {
				break
			}
			r := q
			rtype, ok := vint(x, &r)
			if ok && rtype == 1 {
				encrypted = true
			}
			q += int(rsize)
		}
	}
	return name, encrypted, true
}

// cleanName makes an entry name printable and uses '/' as separator.
func cleanName(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "?")
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		if r == '\\' {
			return '/'
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = s[:1024]
	}
	return s
}
