package detect

// DecodeStd exposes the encoding/json reference decoder to tests.
var DecodeStd = decodeStd
