package format

import (
	"testing"

	"github.com/jichitai/seccloud/detect"
)

// FuzzDecodeRecord: arbitrary bytes give an error or an event that
// re-encodes to the same bytes; never a panic.
func FuzzDecodeRecord(f *testing.F) {
	e := detect.Event{Module: "dns", Tenant: "t01", URL: "https://example.jp/"}
	f.Add(AppendRecord(nil, &e))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e detect.Event
		if err := DecodeRecord(b, &e); err != nil {
			return
		}
		_, _, err := RecordKey(b)
		if err != nil {
			t.Fatalf("RecordKey failed on a decodable record: %v", err)
		}
	})
}

// FuzzReadFrames: the write-ahead log reader on arbitrary bytes stops at
// a torn tail within bounds, and its payload decoders never panic.
func FuzzReadFrames(f *testing.F) {
	var buf []byte
	buf = BeginFrame(buf, FrameCheckpoint)
	buf = AppendCheckpoint(buf, &Checkpoint{Seq: 3, Parts: []PartLen{{Name: "20250610-000.open", Len: 4096}}})
	FinishFrame(buf, 0)
	start := len(buf)
	buf = BeginFrame(buf, FrameBatch)
	e := detect.Event{Module: "proxy", Tenant: "t02"}
	buf = AppendBatchRecord(buf, AppendRecord(nil, &e))
	FinishFrame(buf, start)
	f.Add(buf)
	f.Add(buf[:len(buf)-3])
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		end, _ := ReadFrames(b, func(typ byte, p []byte) error {
			switch typ {
			case FrameCheckpoint:
				_, _ = DecodeCheckpoint(p)
			case FrameBatch:
				_ = ReadBatch(p, func(rec []byte) error {
					var e detect.Event
					_ = DecodeRecord(rec, &e)
					return nil
				})
			}
			return nil
		})
		if end < 0 || end > len(b) {
			t.Fatalf("end %d outside [0,%d]", end, len(b))
		}
	})
}

// FuzzSegment: block headers, index sections and footers parsed from
// arbitrary bytes give errors, not panics, and stay within bounds.
func FuzzSegment(f *testing.F) {
	bi := BlockInfo{Count: 1, MinT: 1, MaxT: 2, Tenant: "t01", Module: "waf", RawLen: 3, Offset: FileHeaderSize}
	f.Add(AppendBlock(nil, &bi, []byte("abc")))
	f.Add(AppendIndex(nil, []BlockInfo{bi}))
	f.Add(AppendFooter(nil, &Footer{IndexOff: FileHeaderSize, Seq: 1}))
	f.Add(AppendFileHeader(nil, 20250610, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParseFileHeader(b)
		if h, err := ParseBlockHeader(b); err == nil && h.Len < int64(h.HeadSize) {
			t.Fatalf("block length %d below header %d", h.Len, h.HeadSize)
		}
		_, _ = CheckBlock(b)
		limit := int64(len(b)) * 4
		if blocks, err := DecodeIndex(b, limit); err == nil {
			for _, x := range blocks {
				if x.Offset+x.Len > limit {
					t.Fatalf("block %+v beyond %d", x, limit)
				}
			}
		}
		if len(b) >= FooterSize {
			_, _ = ParseFooter(b[len(b)-FooterSize:], int64(len(b)))
		}
	})
}
