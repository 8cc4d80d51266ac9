package format

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jichitai/seccloud/detect"
)

// fill sets every field of v (recursively) to a non-zero value, so that a
// field added to detect.Event and forgotten by the codec fails the round
// trip.
func fill(t *testing.T, v reflect.Value, path string) {
	switch v.Type() {
	case reflect.TypeFor[time.Time]():
		v.Set(reflect.ValueOf(time.Date(2025, 6, 10, 1, 2, 3, 4, time.UTC)))
		return
	case reflect.TypeFor[netip.Addr]():
		v.Set(reflect.ValueOf(netip.MustParseAddr("fe80::1%eth0")))
		return
	case reflect.TypeFor[netip.AddrPort]():
		v.Set(reflect.ValueOf(netip.MustParseAddrPort("192.0.2.1:8080")))
		return
	case reflect.TypeFor[detect.Severity]():
		v.SetUint(uint64(detect.SeverityReached))
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("v:" + path + " 日本語")
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(-12345)
	case reflect.Uint8, reflect.Uint16:
		v.SetUint(3)
	case reflect.Struct:
		for i := range v.NumField() {
			fill(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		t.Fatalf("fill: %s: unhandled kind %s; teach the codec and this test", path, v.Kind())
	}
}

func TestRecordRoundTripEveryField(t *testing.T) {
	var e detect.Event
	fill(t, reflect.ValueOf(&e).Elem(), "Event")
	rec := AppendRecord(nil, &e)
	var got detect.Event
	require.NoError(t, DecodeRecord(rec, &got))
	assert.Equal(t, e, got)

	tenant, module, err := RecordKey(rec)
	require.NoError(t, err)
	assert.Equal(t, e.Tenant, tenant)
	assert.Equal(t, e.Module, module)

	for i := range rec {
		require.Error(t, DecodeRecord(rec[:i], &got), "cut at %d", i)
	}
}

func TestRecordZeroEvent(t *testing.T) {
	e := detect.Event{Time: time.Unix(0, 0).UTC()}
	var got detect.Event
	require.NoError(t, DecodeRecord(AppendRecord(nil, &e), &got))
	assert.Equal(t, e, got)
}

func TestFramesStopAtTornTail(t *testing.T) {
	var buf []byte
	for i := range 3 {
		start := len(buf)
		buf = BeginFrame(buf, FrameBatch)
		buf = AppendBatchRecord(buf, []byte{byte(i), 1, 2})
		FinishFrame(buf, start)
	}
	whole := len(buf)
	count := func(b []byte) (int, int) {
		n := 0
		end, err := ReadFrames(b, func(byte, []byte) error { n++; return nil })
		require.NoError(t, err)
		return n, end
	}
	n, end := count(buf)
	assert.Equal(t, 3, n)
	assert.Equal(t, whole, end)
	n, end = count(buf[:whole-1])
	assert.Equal(t, 2, n)
	assert.Equal(t, whole/3*2, end)
	bad := append([]byte(nil), buf...)
	bad[whole/3+FrameHeaderSize+1] ^= 1
	n, _ = count(bad)
	assert.Equal(t, 1, n)
}

func TestBlockAndFooter(t *testing.T) {
	bi := BlockInfo{Count: 2, MinT: 1, MaxT: 5, Tenant: "t01", Module: "dns", RawLen: 10}
	b := AppendBlock(nil, &bi, []byte("payload"))
	got, err := ParseBlockHeader(b)
	require.NoError(t, err)
	assert.Equal(t, bi, got)
	p, err := CheckBlock(b)
	require.NoError(t, err)
	assert.Equal(t, "payload", string(p))
	b[len(b)-1] ^= 1
	_, err = CheckBlock(b)
	require.ErrorIs(t, err, ErrCorrupt)

	bi.Offset = FileHeaderSize
	idx := AppendIndex(nil, []BlockInfo{bi})
	blocks, err := DecodeIndex(idx, 1000)
	require.NoError(t, err)
	assert.Equal(t, bi.Tenant, blocks[0].Tenant)

	f := Footer{IndexOff: 100, Seq: 7}
	f.Link = Link(f.Prev, f.BodyHash, f.Seq, "x")
	fb := AppendFooter(nil, &f)
	require.Len(t, fb, FooterSize)
	pf, err := ParseFooter(fb, 100+FooterSize)
	require.NoError(t, err)
	assert.Equal(t, f, pf)
}
