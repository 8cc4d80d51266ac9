package ratelimit

import (
	"errors"
	"fmt"
)

// Sentinel errors returned by the limiters. Test for them with errors.Is:
// the errors actually returned may wrap them with more context.
var (
	// ErrExceedsBurst is returned when a single request asks for more
	// tokens than the bucket can ever hold; waiting would never help.
	ErrExceedsBurst = errors.New("ratelimit: n exceeds burst")
	// ErrDeadline is returned by WaitN when the wait needed is longer than
	// the context allows; no tokens are consumed.
	ErrDeadline = errors.New("ratelimit: wait would exceed context deadline")
	// ErrQueueFull is returned by Concurrency.Acquire when the key's queue
	// is full.
	ErrQueueFull = errors.New("ratelimit: queue full")
	// ErrQueueTimeout is returned by Concurrency.Acquire when the request
	// waited in the queue for longer than the configured QueueTimeout.
	ErrQueueTimeout = errors.New("ratelimit: queue timeout")
	// ErrTooManyKeys is returned by Concurrency.Acquire when MaxKeys keys
	// already hold or wait for a slot.
	ErrTooManyKeys = errors.New("ratelimit: too many keys")
	// ErrUnknownTenant is returned by Fair when asked about a tenant that
	// is not configured.
	ErrUnknownTenant = errors.New("ratelimit: unknown tenant")
	// ErrClosed is returned by the methods of a closed Fair.
	ErrClosed = errors.New("ratelimit: closed")
	// ErrInvalidN is returned when n is negative.
	ErrInvalidN = errors.New("ratelimit: negative n")
)

// ConfigError reports a configuration field that a constructor refused.
// Field is the Go name of the field as written in the config struct, for
// example "Rate" or "Tenants[3].Ceiling".
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("ratelimit: invalid %s: %s", e.Field, e.Reason)
}

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
