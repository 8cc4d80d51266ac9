package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash/crc32"
)

// SegMagic starts every segment part file; the file header is SegMagic,
// the UTC day as a 4-byte little-endian yyyymmdd number and the part
// number as 4 bytes little-endian.
const SegMagic = "SCSEG\x00\x01\n"

// FileHeaderSize is the size of a segment part's file header.
const FileHeaderSize = 16

// AppendFileHeader appends a segment part file header.
func AppendFileHeader(dst []byte, day, part uint32) []byte {
	dst = append(dst, SegMagic...)
	dst = binary.LittleEndian.AppendUint32(dst, day)
	return binary.LittleEndian.AppendUint32(dst, part)
}

// ParseFileHeader checks a segment part file header.
func ParseFileHeader(b []byte) (day, part uint32, err error) {
	if len(b) < FileHeaderSize || string(b[:8]) != SegMagic {
		return 0, 0, corrupt("segment file header")
	}
	return binary.LittleEndian.Uint32(b[8:]), binary.LittleEndian.Uint32(b[12:]), nil
}

// Block headers start with BlockMagic. The fixed part of a header is
// BlockFixedSize bytes: magic, CRC-32C (of the rest of the header and the
// payload), compressed length, raw length, event count (4 bytes each),
// minimum and maximum event time (UnixNano, 8 bytes each), tenant length
// and module length (1 byte each); tenant and module bytes follow, then the
// zstd payload. The raw payload is the concatenation of length-prefixed
// (uvarint) records sorted by time.
const (
	BlockMagic     = 0x4b424353 // "SCBK" little-endian
	BlockFixedSize = 38
	// MaxKey is the longest tenant or module id a block key holds.
	MaxKey = 255
	// MaxBlockHeader is the largest possible block header.
	MaxBlockHeader = BlockFixedSize + 2*MaxKey
)

// BlockInfo describes one compressed block: its index entry.
type BlockInfo struct {
	Offset   int64 // of the block header in the part file
	Len      int64 // header + payload
	Count    int
	MinT     int64
	MaxT     int64
	Tenant   string
	Module   string
	RawLen   int
	CompLen  int
	HeadSize int
}

// AppendBlock appends a block header and payload to dst. The payload is
// the compressed bytes; raw is the uncompressed length.
func AppendBlock(dst []byte, bi *BlockInfo, payload []byte) []byte {
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, BlockMagic)
	dst = append(dst, 0, 0, 0, 0) // crc
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(bi.RawLen))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(bi.Count))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(bi.MinT))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(bi.MaxT))
	dst = append(dst, byte(len(bi.Tenant)), byte(len(bi.Module)))
	dst = append(dst, bi.Tenant...)
	dst = append(dst, bi.Module...)
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Update(0, Castagnoli, dst[start+8:]))
	bi.CompLen = len(payload)
	bi.HeadSize = BlockFixedSize + len(bi.Tenant) + len(bi.Module)
	bi.Len = int64(len(dst) - start)
	return dst
}

// ParseBlockHeader parses the header at the start of b (which holds at
// least the whole header; at most MaxBlockHeader bytes are looked at). The
// returned info has Offset zero; the CRC is not checked (see CheckBlock).
func ParseBlockHeader(b []byte) (BlockInfo, error) {
	var bi BlockInfo
	if len(b) < BlockFixedSize || binary.LittleEndian.Uint32(b) != BlockMagic {
		return bi, corrupt("block header")
	}
	bi.CompLen = int(binary.LittleEndian.Uint32(b[8:]))
	bi.RawLen = int(binary.LittleEndian.Uint32(b[12:]))
	bi.Count = int(binary.LittleEndian.Uint32(b[16:]))
	bi.MinT = int64(binary.LittleEndian.Uint64(b[20:]))
	bi.MaxT = int64(binary.LittleEndian.Uint64(b[28:]))
	tl, ml := int(b[36]), int(b[37])
	bi.HeadSize = BlockFixedSize + tl + ml
	if len(b) < bi.HeadSize || bi.MinT > bi.MaxT || bi.CompLen > MaxFrame || bi.RawLen > MaxFrame {
		return bi, corrupt("block header")
	}
	bi.Tenant = string(b[BlockFixedSize : BlockFixedSize+tl])
	bi.Module = string(b[BlockFixedSize+tl : bi.HeadSize])
	bi.Len = int64(bi.HeadSize + bi.CompLen)
	return bi, nil
}

// CheckBlock verifies the CRC of a whole block (header and payload) and
// returns the payload.
func CheckBlock(b []byte) ([]byte, error) {
	bi, err := ParseBlockHeader(b)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != bi.Len {
		return nil, corrupt("block length")
	}
	if crc32.Update(0, Castagnoli, b[8:]) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, corrupt("block checksum")
	}
	return b[bi.HeadSize:], nil
}

// IndexMagic starts the index section of a sealed part.
const IndexMagic = "SCIX"

// AppendIndex appends the index section: IndexMagic, uvarint count, then per
// block offset, length, count (uvarints), min and max time (varints),
// tenant and module (uvarint length + bytes).
func AppendIndex(dst []byte, blocks []BlockInfo) []byte {
	dst = append(dst, IndexMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(blocks)))
	for i := range blocks {
		b := &blocks[i]
		dst = binary.AppendUvarint(dst, uint64(b.Offset))
		dst = binary.AppendUvarint(dst, uint64(b.Len))
		dst = binary.AppendUvarint(dst, uint64(b.Count))
		dst = binary.AppendVarint(dst, b.MinT)
		dst = binary.AppendVarint(dst, b.MaxT)
		dst = appendStr(dst, b.Tenant)
		dst = appendStr(dst, b.Module)
	}
	return dst
}

// DecodeIndex decodes an index section. Every block must lie within
// [FileHeaderSize, limit).
func DecodeIndex(b []byte, limit int64) ([]BlockInfo, error) {
	if !bytes.HasPrefix(b, []byte(IndexMagic)) {
		return nil, corrupt("index magic")
	}
	d := decoder{b: b[len(IndexMagic):]}
	n := d.count()
	out := make([]BlockInfo, 0, n)
	for i := 0; i < n && !d.bad; i++ {
		var bi BlockInfo
		off, l := d.uvarint(), d.uvarint()
		bi.Count = int(d.uvarint() & 0xffffffff)
		bi.MinT, bi.MaxT = d.varint(), d.varint()
		bi.Tenant, bi.Module = d.str(), d.str()
		if off < FileHeaderSize || l < BlockFixedSize || off > uint64(limit) || l > uint64(limit)-off || bi.MinT > bi.MaxT {
			d.fail()
		}
		bi.Offset, bi.Len = int64(off), int64(l)
		out = append(out, bi)
	}
	if d.bad || len(d.b) != 0 {
		return nil, corrupt("index")
	}
	return out, nil
}

// Footer is the fixed-size trailer of a sealed segment part. Body is every
// byte of the file before the footer (file header, blocks, index).
type Footer struct {
	IndexOff int64
	Seq      uint64
	BodyHash [32]byte
	Prev     [32]byte
	Link     [32]byte
}

// FooterMagic starts the footer.
const FooterMagic = "SCFT"

// FooterSize: magic 4, index offset 8, seq 8, body hash 32, prev link 32,
// link 32, CRC-32C 4.
const FooterSize = 4 + 8 + 8 + 32 + 32 + 32 + 4

// AppendFooter appends f.
func AppendFooter(dst []byte, f *Footer) []byte {
	start := len(dst)
	dst = append(dst, FooterMagic...)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(f.IndexOff))
	dst = binary.LittleEndian.AppendUint64(dst, f.Seq)
	dst = append(dst, f.BodyHash[:]...)
	dst = append(dst, f.Prev[:]...)
	dst = append(dst, f.Link[:]...)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], Castagnoli))
}

// ParseFooter parses the last FooterSize bytes of a sealed part whose total
// size is size.
func ParseFooter(b []byte, size int64) (Footer, error) {
	var f Footer
	if len(b) != FooterSize || string(b[:4]) != FooterMagic {
		return f, corrupt("footer magic")
	}
	if crc32.Checksum(b[:FooterSize-4], Castagnoli) != binary.LittleEndian.Uint32(b[FooterSize-4:]) {
		return f, corrupt("footer checksum")
	}
	f.IndexOff = int64(binary.LittleEndian.Uint64(b[4:]))
	f.Seq = binary.LittleEndian.Uint64(b[12:])
	copy(f.BodyHash[:], b[20:52])
	copy(f.Prev[:], b[52:84])
	copy(f.Link[:], b[84:116])
	if f.IndexOff < FileHeaderSize || f.IndexOff > size-FooterSize {
		return f, corrupt("footer index offset")
	}
	return f, nil
}

// chainDomain separates the link hash from any other use of SHA-256.
const chainDomain = "seccloud/store chain v1\x00"

// Link computes the chain hash of a sealed part: SHA-256 over chainDomain,
// the previous link, the body hash, the sequence number (8 bytes
// big-endian) and the part's file name.
func Link(prev, body [32]byte, seq uint64, name string) [32]byte {
	h := sha256.New()
	h.Write([]byte(chainDomain))
	h.Write(prev[:])
	h.Write(body[:])
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	h.Write(s[:])
	h.Write([]byte(name))
	var out [32]byte
	h.Sum(out[:0])
	return out
}
