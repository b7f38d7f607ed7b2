package stream

import "context"

// Output is one destination of records. Write delivers one record; it is
// called again for the same record after a failure (at least once), so what
// it emits carries the record's ID. Errors that are worth retrying (a peer
// that is down, a full disk, a program that failed) are marked with
// actions.Retryable; others (a record that can never be written) are
// permanent. Close releases the output; Write after Close fails.
type Output interface {
	Write(ctx context.Context, r Record) error
	Close() error
}
