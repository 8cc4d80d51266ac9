package mailrelay

import (
	"bufio"
	"bytes"
	"errors"
)

var (
	// errBareNewline: a bare LF or bare CR in DATA. The session is closed
	// (as Postfix's smtpd_forbid_bare_newline does), since what follows
	// could be a smuggled second message.
	errBareNewline = errors.New("bare CR or LF in message data")
	// errTooBig: the message exceeded the size limit; the rest of the data
	// was read and discarded.
	errTooBig = errors.New("message too big")
)

// readData reads a DATA body up to the terminating CRLF.CRLF, undoing dot
// stuffing, and appends it (with CRLF line ends) to dst. Every line must
// end in CRLF; a CR or LF anywhere else fails with errBareNewline. At most
// max bytes are kept; beyond that it reads to the end and returns
// errTooBig.
func readData(r *bufio.Reader, max int64, dst []byte) ([]byte, error) {
	atLineStart := true
	pendingCR := false
	tooBig := false
	for {
		chunk, err := r.ReadSlice('\n')
		full := err == nil
		if err != nil && err != bufio.ErrBufferFull {
			return dst, err
		}
		if len(chunk) == 0 {
			continue
		}
		if full {
			if pendingCR {
				if len(chunk) != 1 {
					return dst, errBareNewline
				}
			} else {
				if len(chunk) < 2 || chunk[len(chunk)-2] != '\r' ||
					bytes.IndexByte(chunk[:len(chunk)-2], '\r') >= 0 {
					return dst, errBareNewline
				}
				if atLineStart && len(chunk) == 3 && chunk[0] == '.' {
					if tooBig {
						return dst, errTooBig
					}
					return dst, nil
				}
			}
			pendingCR = false
		} else {
			if pendingCR {
				return dst, errBareNewline
			}
			body := chunk
			if chunk[len(chunk)-1] == '\r' {
				pendingCR = true
				body = chunk[:len(chunk)-1]
			}
			if bytes.IndexByte(body, '\r') >= 0 {
				return dst, errBareNewline
			}
		}
		if atLineStart && chunk[0] == '.' {
			chunk = chunk[1:]
		}
		atLineStart = full
		if !tooBig {
			if int64(len(dst)+len(chunk)) > max {
				tooBig = true
			} else {
				dst = append(dst, chunk...)
			}
		}
	}
}
