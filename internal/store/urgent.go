package store

import "context"

type urgentKey struct{}

// Urgent marks the writes made with the returned context as urgent: the
// writer commits the batch they are in at once, instead of holding it open
// for group commit, and answers them as soon as that COMMIT returned (their
// rows are in the write-ahead log and visible to readers), instead of after
// the fsync that makes them durable. That fsync follows anyway, in commit
// order, and any ordinary write answered later covers them too; but a power
// loss, or a failed fsync, between the answer and that fsync takes them
// back. A process crash (kill -9) does not: the operating system still has
// the committed frames. After a failed fsync urgent writes are refused like
// every other write.
//
// Use it only where acting on a write that may yet be lost is safe: the
// engine's own detector alerts (a kernel event lost in a power cut is lost
// whether it was stored or not) and the claim of an action that is harmless
// to run again (actions.Spec.Idempotent). See doc.go, Durability.
//
// On PostgreSQL (internal/store/postgres) an urgent write's transaction
// commits with synchronous_commit off: COMMIT returns before its WAL is
// flushed, the flush follows within wal_writer_delay, and only a crash of
// PostgreSQL or its machine in between loses it. Urgent is a permission
// to answer early, never a demand: a backend may ignore it.
func Urgent(ctx context.Context) context.Context {
	return context.WithValue(ctx, urgentKey{}, true)
}

// IsUrgent reports whether ctx was made by Urgent.
func IsUrgent(ctx context.Context) bool {
	u, _ := ctx.Value(urgentKey{}).(bool)
	return u
}
