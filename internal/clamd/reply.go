package clamd

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Status is the outcome of a scan.
type Status int

const (
	// Clean: clamd found nothing in the bytes it was sent.
	Clean Status = iota
	// Infected: clamd found a signature; Result.Signature names it.
	Infected
	// TooLarge: the stream was longer than the limit (clamd's StreamMaxLength
	// or Config.MaxStream). Nothing was found in the part that was scanned,
	// but the rest was not scanned: the caller decides what that means.
	TooLarge
)

// String returns "clean", "infected" or "too-large".
func (s Status) String() string {
	switch s {
	case Clean:
		return "clean"
	case Infected:
		return "infected"
	case TooLarge:
		return "too-large"
	}
	return "status(" + strconv.Itoa(int(s)) + ")"
}

// Result is the answer to one scan.
type Result struct {
	Status Status
	// Signature is the name clamd reported, e.g. "Eicar-Test-Signature"
	// (Infected only).
	Signature string
	// Scanned is the number of bytes sent to clamd.
	Scanned int64
}

// ReplyError is an ERROR reply from clamd other than the size limit, e.g.
// "UNKNOWN COMMAND" or a failure to open a temporary file. The connection it
// came on is not reused.
type ReplyError struct {
	Msg string // the reply without the session id
}

func (e *ReplyError) Error() string { return "clamd: daemon replied: " + e.Msg }

// errMalformed is returned for replies that follow no known shape.
var errMalformed = errors.New("clamd: malformed reply")

const sizeLimitReply = "INSTREAM size limit exceeded. ERROR"

// parseReply parses one NUL- or newline-terminated reply to INSTREAM (the
// terminator already removed). In an IDSESSION every reply starts with
// "<id>: "; id is 0 when there is no such prefix.
//
// Shapes: "stream: OK", "stream: <signature> FOUND",
// "INSTREAM size limit exceeded. ERROR", "<anything> ERROR".
func parseReply(line string) (id uint64, res Result, err error) {
	line = strings.TrimRight(line, "\x00\n")
	if i := strings.IndexByte(line, ':'); i > 0 && isDigits(line[:i]) && strings.HasPrefix(line[i+1:], " ") {
		n, perr := strconv.ParseUint(line[:i], 10, 64)
		if perr != nil {
			return 0, Result{}, fmt.Errorf("%w: session id %q", errMalformed, line[:i])
		}
		id, line = n, line[i+2:]
	}
	switch {
	case line == sizeLimitReply:
		return id, Result{Status: TooLarge}, nil
	case strings.HasSuffix(line, " ERROR"):
		return id, Result{}, &ReplyError{Msg: line}
	case line == "stream: OK":
		return id, Result{Status: Clean}, nil
	case strings.HasPrefix(line, "stream: ") && strings.HasSuffix(line, " FOUND"):
		sig := strings.TrimSuffix(strings.TrimPrefix(line, "stream: "), " FOUND")
		if sig == "" || strings.ContainsAny(sig, "\x00\n") {
			return id, Result{}, fmt.Errorf("%w: %q", errMalformed, truncate(line))
		}
		return id, Result{Status: Infected, Signature: sig}, nil
	}
	return id, Result{}, fmt.Errorf("%w: %q", errMalformed, truncate(line))
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
