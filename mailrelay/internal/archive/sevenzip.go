package archive

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"unicode/utf16"

	"github.com/ulikunitz/xz/lzma"
)

// 7z: a 32-byte signature header (signature, version, start header CRC,
// next header offset u64, next header size u64, next header CRC) and,
// at 32 + offset, the header: kHeader, or kEncodedHeader — a streams
// description of the real header, packed (LZMA by default, AES with
// 7z -mhe). Entry names are in kFilesInfo/kName (UTF-16LE); encryption
// shows as the AES coder (06 F1 07 01) in a folder's coder list.

const (
	k7End            = 0x00
	k7Header         = 0x01
	k7ArchiveProps   = 0x02
	k7AddStreams     = 0x03
	k7MainStreams    = 0x04
	k7FilesInfo      = 0x05
	k7PackInfo       = 0x06
	k7UnpackInfo     = 0x07
	k7SubStreams     = 0x08
	k7Size           = 0x09
	k7CRC            = 0x0a
	k7Folder         = 0x0b
	k7CodersUnpack   = 0x0c
	k7NumUnpack      = 0x0d
	k7Name           = 0x11
	k7EncodedHeader  = 0x17
	max7zHeader      = 4 << 20 // largest (decoded) header read
	max7zFolders     = 10000
	max7zCoders      = 32
	max7zStreamCount = 100000
)

var (
	coderAES   = []byte{0x06, 0xf1, 0x07, 0x01}
	coderLZMA  = []byte{0x03, 0x01, 0x01}
	coderLZMA2 = []byte{0x21}
	coderCopy  = []byte{0x00}
)

var err7z = errors.New("archive: malformed 7z header")

type r7 struct {
	b []byte
	p int
}

func (r *r7) byte() (byte, error) {
	if r.p >= len(r.b) {
		return 0, err7z
	}
	c := r.b[r.p]
	r.p++
	return c, nil
}

func (r *r7) bytes(n uint64) ([]byte, error) {
	if n > uint64(len(r.b)-r.p) {
		return nil, err7z
	}
	s := r.b[r.p : r.p+int(n)]
	r.p += int(n)
	return s, nil
}

// number reads a 7z NUMBER: the count of leading 1 bits of the first
// byte is the count of extra little-endian bytes.
func (r *r7) number() (uint64, error) {
	first, err := r.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	mask := byte(0x80)
	for i := 0; i < 8; i++ {
		if first&mask == 0 {
			high := uint64(first & (mask - 1))
			return v | high<<(8*i), nil
		}
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint64(c) << (8 * i)
		mask >>= 1
	}
	return v, nil
}

// count reads a NUMBER that counts items, bounded by max.
func (r *r7) count(max uint64) (int, error) {
	n, err := r.number()
	if err != nil || n > max {
		return 0, err7z
	}
	return int(n), nil
}

type coder7 struct {
	id, props []byte
	in, out   int
}

type folder7 struct {
	coders   []coder7
	unpack   []uint64 // one per coder output
	packed   int      // packed streams used
	hasCRC   bool
	numOuts  int
	bindOuts map[int]bool
}

// finalSize is the size of the folder's main output (the one no bind
// pair consumes).
func (f *folder7) finalSize() uint64 {
	for i, s := range f.unpack {
		if !f.bindOuts[i] {
			return s
		}
	}
	return 0
}

type streams7 struct {
	packPos   uint64
	packSizes []uint64
	folders   []folder7
}

func (r *r7) skipDigests(n int) error {
	all, err := r.byte()
	if err != nil {
		return err
	}
	defined := n
	if all == 0 {
		bits, err := r.bytes(uint64((n + 7) / 8))
		if err != nil {
			return err
		}
		defined = 0
		for i := 0; i < n; i++ {
			if bits[i/8]&(0x80>>(i%8)) != 0 {
				defined++
			}
		}
	}
	_, err = r.bytes(uint64(defined) * 4)
	return err
}

func (r *r7) folder() (folder7, error) {
	var f folder7
	nc, err := r.count(max7zCoders)
	if err != nil || nc == 0 {
		return f, err7z
	}
	totalIn, totalOut := 0, 0
	for i := 0; i < nc; i++ {
		flag, err := r.byte()
		if err != nil || flag&0x80 != 0 {
			return f, err7z
		}
		var c coder7
		if c.id, err = r.bytes(uint64(flag & 0x0f)); err != nil {
			return f, err
		}
		c.in, c.out = 1, 1
		if flag&0x10 != 0 {
			if c.in, err = r.count(max7zCoders); err != nil {
				return f, err
			}
			if c.out, err = r.count(max7zCoders); err != nil {
				return f, err
			}
		}
		if flag&0x20 != 0 {
			n, err := r.number()
			if err != nil {
				return f, err
			}
			if c.props, err = r.bytes(n); err != nil {
				return f, err
			}
		}
		totalIn += c.in
		totalOut += c.out
		f.coders = append(f.coders, c)
	}
	if totalOut == 0 || totalIn == 0 || totalOut > max7zCoders*4 || totalIn > max7zCoders*4 {
		return f, err7z
	}
	f.numOuts = totalOut
	f.bindOuts = map[int]bool{}
	for i := 0; i < totalOut-1; i++ {
		if _, err := r.number(); err != nil { // in index
			return f, err
		}
		out, err := r.number()
		if err != nil {
			return f, err
		}
		f.bindOuts[int(out&0xffff)] = true
	}
	f.packed = totalIn - (totalOut - 1)
	if f.packed < 1 {
		return f, err7z
	}
	if f.packed > 1 {
		for i := 0; i < f.packed; i++ {
			if _, err := r.number(); err != nil {
				return f, err
			}
		}
	}
	return f, nil
}

// streamsInfo reads PackInfo, UnpackInfo and SubStreamsInfo up to kEnd.
func (r *r7) streamsInfo() (streams7, error) {
	var s streams7
	for {
		id, err := r.byte()
		if err != nil {
			return s, err
		}
		switch id {
		case k7End:
			return s, nil
		case k7PackInfo:
			if s.packPos, err = r.number(); err != nil {
				return s, err
			}
			n, err := r.count(max7zStreamCount)
			if err != nil {
				return s, err
			}
			for {
				t, err := r.byte()
				if err != nil {
					return s, err
				}
				if t == k7End {
					break
				}
				switch t {
				case k7Size:
					for i := 0; i < n; i++ {
						v, err := r.number()
						if err != nil {
							return s, err
						}
						s.packSizes = append(s.packSizes, v)
					}
				case k7CRC:
					if err := r.skipDigests(n); err != nil {
						return s, err
					}
				default:
					return s, err7z
				}
			}
		case k7UnpackInfo:
			if t, err := r.byte(); err != nil || t != k7Folder {
				return s, err7z
			}
			n, err := r.count(max7zFolders)
			if err != nil {
				return s, err
			}
			if ext, err := r.byte(); err != nil || ext != 0 {
				return s, err7z
			}
			for i := 0; i < n; i++ {
				f, err := r.folder()
				if err != nil {
					return s, err
				}
				s.folders = append(s.folders, f)
			}
			if t, err := r.byte(); err != nil || t != k7CodersUnpack {
				return s, err7z
			}
			for i := range s.folders {
				for j := 0; j < s.folders[i].numOuts; j++ {
					v, err := r.number()
					if err != nil {
						return s, err
					}
					s.folders[i].unpack = append(s.folders[i].unpack, v)
				}
			}
			for {
				t, err := r.byte()
				if err != nil {
					return s, err
				}
				if t == k7End {
					break
				}
				if t != k7CRC {
					return s, err7z
				}
				bits := r.p
				if err := r.skipDigests(n); err != nil {
					return s, err
				}
				_ = bits
				for i := range s.folders {
					s.folders[i].hasCRC = true
				}
			}
		case k7SubStreams:
			if err := r.subStreams(s.folders); err != nil {
				return s, err
			}
		default:
			return s, err7z
		}
	}
}

func (r *r7) subStreams(folders []folder7) error {
	nums := make([]int, len(folders))
	for i := range nums {
		nums[i] = 1
	}
	t, err := r.byte()
	if err != nil {
		return err
	}
	if t == k7NumUnpack {
		for i := range nums {
			if nums[i], err = r.count(max7zStreamCount); err != nil {
				return err
			}
		}
		if t, err = r.byte(); err != nil {
			return err
		}
	}
	if t == k7Size {
		for _, n := range nums {
			for j := 1; j < n; j++ {
				if _, err := r.number(); err != nil {
					return err
				}
			}
		}
		if t, err = r.byte(); err != nil {
			return err
		}
	}
	digests := 0
	for i, n := range nums {
		if n != 1 || !folders[i].hasCRC {
			digests += n
		}
	}
	for t != k7End {
		if t != k7CRC {
			return err7z
		}
		if err := r.skipDigests(digests); err != nil {
			return err
		}
		if t, err = r.byte(); err != nil {
			return err
		}
	}
	return nil
}

func hasAES(folders []folder7) bool {
	for _, f := range folders {
		for _, c := range f.coders {
			if bytes.Equal(c.id, coderAES) {
				return true
			}
		}
	}
	return false
}

// filesInfo reads kFilesInfo's names.
func (r *r7) filesInfo(info *Info) error {
	n, err := r.count(max7zStreamCount)
	if err != nil {
		return err
	}
	for {
		t, err := r.byte()
		if err != nil {
			return err
		}
		if t == k7End {
			return nil
		}
		size, err := r.number()
		if err != nil {
			return err
		}
		data, err := r.bytes(size)
		if err != nil {
			return err
		}
		if t != k7Name || len(data) == 0 || data[0] != 0 {
			continue
		}
		data = data[1:]
		var u []uint16
		for i := 0; i+1 < len(data) && len(info.Names) < min(n, MaxEntries); i += 2 {
			c := binary.LittleEndian.Uint16(data[i:])
			if c == 0 {
				info.Names = append(info.Names, cleanName(string(utf16.Decode(u))))
				u = u[:0]
				continue
			}
			u = append(u, c)
		}
	}
}

// header reads a plain kHeader (after its id byte).
func (r *r7) header(info *Info) error {
	for {
		t, err := r.byte()
		if err != nil {
			return err
		}
		switch t {
		case k7End:
			return nil
		case k7ArchiveProps:
			for {
				pt, err := r.byte()
				if err != nil {
					return err
				}
				if pt == 0 {
					break
				}
				n, err := r.number()
				if err != nil {
					return err
				}
				if _, err := r.bytes(n); err != nil {
					return err
				}
			}
		case k7AddStreams, k7MainStreams:
			s, err := r.streamsInfo()
			if err != nil {
				return err
			}
			if hasAES(s.folders) {
				info.Encrypted = true
			}
		case k7FilesInfo:
			if err := r.filesInfo(info); err != nil {
				return err
			}
		default:
			return err7z
		}
	}
}

// decodeHeader unpacks an encoded header described by s. Only a single
// LZMA, LZMA2 or copy coder is supported (what 7-Zip writes).
func decodeHeader(b []byte, s streams7) ([]byte, error) {
	if len(s.folders) != 1 || len(s.folders[0].coders) != 1 || len(s.packSizes) < 1 {
		return nil, err7z
	}
	f := s.folders[0]
	c := f.coders[0]
	size := f.finalSize()
	if size == 0 || size > max7zHeader {
		return nil, err7z
	}
	start := 32 + s.packPos
	if s.packPos > uint64(len(b)) || start > uint64(len(b)) || s.packSizes[0] > uint64(len(b))-start {
		return nil, err7z
	}
	packed := b[start : start+s.packSizes[0]]
	var rd io.Reader
	switch {
	case bytes.Equal(c.id, coderCopy):
		rd = bytes.NewReader(packed)
	case bytes.Equal(c.id, coderLZMA):
		if len(c.props) != 5 {
			return nil, err7z
		}
		// A classic .lzma header: properties, dictionary size (enough for
		// the output, so a forged huge dictionary allocates nothing) and
		// the unpacked size.
		var h [13]byte
		h[0] = c.props[0]
		dict := max(uint32(size), 4096)
		binary.LittleEndian.PutUint32(h[1:], dict)
		binary.LittleEndian.PutUint64(h[5:], size)
		lr, err := lzma.NewReader(io.MultiReader(bytes.NewReader(h[:]), bytes.NewReader(packed)))
		if err != nil {
			return nil, err7z
		}
		rd = lr
	case bytes.Equal(c.id, coderLZMA2):
		cfg := lzma.Reader2Config{DictCap: max(int(size), 4096)}
		lr, err := cfg.NewReader2(bytes.NewReader(packed))
		if err != nil {
			return nil, err7z
		}
		rd = lr
	default:
		return nil, err7z
	}
	out := make([]byte, 0, size)
	buf := bytes.NewBuffer(out)
	if _, err := io.Copy(buf, io.LimitReader(rd, int64(size))); err != nil && buf.Len() < int(size) {
		return nil, err7z
	}
	if uint64(buf.Len()) != size {
		return nil, err7z
	}
	return buf.Bytes(), nil
}

func inspect7z(b []byte) (Info, error) {
	info := Info{Format: SevenZip}
	if len(b) < 32 {
		info.Partial = true
		return info, nil
	}
	off := binary.LittleEndian.Uint64(b[12:])
	size := binary.LittleEndian.Uint64(b[20:])
	if size == 0 {
		return info, nil // empty archive
	}
	if off > uint64(len(b)) || 32+off > uint64(len(b)) || size > uint64(len(b))-32-off || size > max7zHeader {
		info.Partial = true
		return info, nil
	}
	r := &r7{b: b[32+off : 32+off+size]}
	for round := 0; round < 4; round++ {
		id, err := r.byte()
		if err != nil {
			info.Partial = true
			return info, nil
		}
		switch id {
		case k7Header:
			if err := r.header(&info); err != nil {
				info.Partial = true
			}
			return info, nil
		case k7EncodedHeader:
			s, err := r.streamsInfo()
			if err != nil {
				info.Partial = true
				return info, nil
			}
			if hasAES(s.folders) {
				info.Encrypted, info.HeadersEncrypted = true, true
				return info, nil
			}
			hdr, err := decodeHeader(b, s)
			if err != nil {
				info.Partial = true
				return info, nil
			}
			r = &r7{b: hdr}
		default:
			info.Partial = true
			return info, nil
		}
	}
	info.Partial = true
	return info, nil
}
