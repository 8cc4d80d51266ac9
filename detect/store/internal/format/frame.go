package format

import (
	"encoding/binary"
	"hash/crc32"
)

// Castagnoli is the CRC-32C table used by frames and blocks.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame types of the write-ahead log.
const (
	// FrameCheckpoint opens every WAL file: the committed length of each
	// open segment part at the time the WAL was started.
	FrameCheckpoint = 1
	// FrameBatch holds records (one WriteEvents call, or buffered records
	// carried over by a checkpoint).
	FrameBatch = 2
)

// FrameHeaderSize is the size of a frame header: 4-byte little-endian
// payload length, 4-byte CRC-32C of type byte + payload, 1 type byte.
const FrameHeaderSize = 9

// MaxFrame bounds a frame's payload; a longer length is corrupt.
const MaxFrame = 1 << 30

// WALMagic starts every write-ahead log file.
const WALMagic = "SCWAL\x00\x01\n"

// BeginFrame appends a frame header placeholder to dst; fill it with
// FinishFrame once the payload has been appended.
func BeginFrame(dst []byte, typ byte) []byte {
	return append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typ)
}

// FinishFrame fills in the header of the frame that starts at dst[start:].
func FinishFrame(dst []byte, start int) {
	payload := dst[start+FrameHeaderSize:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Update(0, Castagnoli, dst[start+8:]))
}

// ReadFrames calls fn for every intact frame of buf in order and returns
// the offset just past the last intact frame. A frame that is cut short,
// too long or fails its CRC ends the scan: the bytes from the returned
// offset on are a torn tail. An error from fn stops the scan and is
// returned with the offset of the frame it refused.
func ReadFrames(buf []byte, fn func(typ byte, payload []byte) error) (int, error) {
	off := 0
	for {
		rest := buf[off:]
		if len(rest) < FrameHeaderSize {
			return off, nil
		}
		n := binary.LittleEndian.Uint32(rest)
		if n > MaxFrame || uint64(n) > uint64(len(rest)-FrameHeaderSize) {
			return off, nil
		}
		end := FrameHeaderSize + int(n)
		if crc32.Update(0, Castagnoli, rest[8:end]) != binary.LittleEndian.Uint32(rest[4:]) {
			return off, nil
		}
		if err := fn(rest[8], rest[FrameHeaderSize:end]); err != nil {
			return off, err
		}
		off += end
	}
}

// Checkpoint lists the open segment parts and their committed lengths, and
// the sequence number of the last sealed part at checkpoint time.
type Checkpoint struct {
	Seq   uint64
	Parts []PartLen
}

// PartLen is one open part's file name and the length of its fsynced,
// indexed prefix.
type PartLen struct {
	Name string
	Len  int64
}

// AppendCheckpoint appends the payload of a checkpoint frame.
func AppendCheckpoint(dst []byte, c *Checkpoint) []byte {
	dst = binary.AppendUvarint(dst, c.Seq)
	dst = binary.AppendUvarint(dst, uint64(len(c.Parts)))
	for _, p := range c.Parts {
		dst = appendStr(dst, p.Name)
		dst = binary.AppendUvarint(dst, uint64(p.Len))
	}
	return dst
}

// DecodeCheckpoint decodes a checkpoint frame payload.
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	d := decoder{b: b}
	var c Checkpoint
	c.Seq = d.uvarint()
	n := d.count()
	for i := 0; i < n && !d.bad; i++ {
		name := d.str()
		l := d.uvarint()
		if l > 1<<62 {
			d.fail()
		}
		c.Parts = append(c.Parts, PartLen{Name: name, Len: int64(l)})
	}
	if d.bad || len(d.b) != 0 {
		return Checkpoint{}, corrupt("checkpoint frame")
	}
	return c, nil
}

// AppendBatchRecord appends one length-prefixed record to a batch payload.
// It returns the offset of the record bytes within dst.
func AppendBatchRecord(dst []byte, rec []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(rec)))
	return append(dst, rec...)
}

// ReadBatch calls fn for each record of a batch payload. Records are
// length-prefixed (uvarint); the slice passed to fn aliases b.
func ReadBatch(b []byte, fn func(rec []byte) error) error {
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return corrupt("batch record length")
		}
		if err := fn(b[k : k+int(n)]); err != nil {
			return err
		}
		b = b[k+int(n):]
	}
	return nil
}
