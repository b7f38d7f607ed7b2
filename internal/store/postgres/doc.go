// Package postgres is store.Backend on PostgreSQL (github.com/jackc/pgx/v5),
// for cluster mode: several `riposte serve` replicas share one database,
// and with it the inbox, incidents, action runs, approvals, the outbox and
// one hash-chained journal. SQLite (internal/store) stays the embedded
// default for one host; both pass internal/store/storetest.
//
// # Opening, closing, concurrency
//
// Open(ctx, url, opts) connects (a pgxpool), then applies the versioned
// migrations (table schema_version) in one transaction under an advisory
// lock, so replicas starting together migrate once. With
// store.Options{ReadOnly: true} it only checks the schema version (for
// `riposte journal verify|show`). A *Store is safe for concurrent use; its
// opener calls Close once.
//
// # Transactions and durability
//
// Every write is one transaction, and a call returns only after COMMIT
// returned, which with PostgreSQL's default synchronous_commit means the
// commit record is flushed to the WAL: an Accept answered (the server's
// 202) survives a crash of riposte and of PostgreSQL. Accepts are group
// committed: one goroutine per handle (the accepter) runs them, and the
// Accepts that queue while its transaction commits go together into the
// next one (one head-row lock, one WAL flush for all). Close lets the
// queued Accepts commit before it closes the pool. AcceptClaimed and
// AcceptSettled go the same way: the incidents of their alerts are found
// or opened in that transaction (one lookup for the batch, one insert,
// one update), and AcceptSettled's settled alerts are stored done with
// their processing's entries there too, so the 202 of an alert the engine
// processed at accept means its plan is on disk. The transaction sends its
// reads in one batch (the journal head's lock first) and its writes
// (journal rows and head included) in another: four round trips with its
// begin and commit, whatever it holds. ClaimAction is built the same way
// (the head's lock, the run and the blast-radius count; then the run, its
// entries and the head), four round trips where it took eight (nine
// with a budget).
//
// Urgent writes (store.Urgent: the engine's detector alerts, through
// Accept or AcceptSettled, and the Apply and ClaimAction right before an
// idempotent action) are the exception, as on SQLite: their transaction
// begins with SET LOCAL synchronous_commit = off, sent with the BEGIN in
// one simple query (no round trip of its own), so COMMIT returns once the
// commit record is written, before the WAL flush, and the setting ends
// with the transaction. Other replicas see the rows at once; the walwriter
// flushes them within wal_writer_delay (200ms by default), and any
// synchronous commit after them flushes them too, since the WAL is flushed
// in order: the next ordinary write on the chain, such as the action's
// outcome, is durable with them. A crash of riposte loses nothing; a crash
// of PostgreSQL or of its machine in that moment can lose the last urgent
// commits (a suffix of the chain, never a hole), which is what store.Urgent
// allows. The accepter commits the urgent Accepts of a batch in a
// transaction of their own, before the others, so that an ordinary
// Accept's answer still means flushed. An urgent write that needs the
// journal's head still waits for a transaction holding it, and a
// synchronous one holds it until its flush (PostgreSQL releases row locks
// after it). TestUrgentCommitsAsync and TestUrgentAcceptsCommitApart check
// the setting from inside the transactions (a trigger records it with
// every journal row); TestUrgentCommitDoesNotWait checks from outside, on
// a server whose commits wait for a standby that never comes, that urgent
// writes return and an ordinary one does not; BenchmarkUrgentClaim
// measures what it saves.
//
// Sessions set idle_in_transaction_session_timeout (5s) and lock_timeout
// (2s) unless the URL sets them: a replica partitioned mid-transaction
// would otherwise hold the journal's head row until the server noticed
// its connection was dead. A statement that times out waiting for a lock
// runs its transaction again, as after a deadlock.
//
// # One chain, serialised appends
//
// The journal's head is one row (journal_head). A transaction that
// journals anything (accepting alerts, incidents, action runs, approvals,
// settling the outbox with entries) first locks that row with SELECT ...
// FOR UPDATE, numbers and hashes its entries from it, inserts them (COPY)
// and updates the row before COMMIT. So appends from any number of
// replicas form one gap-free chain in commit order, and the entries of one
// transaction are consecutive. The same lock makes the check-then-act
// steps atomic across replicas: the duplicate check of Accept (two
// replicas receiving one alert store it once and journal alert.duplicate
// for the other), finding or opening an incident, ClaimAction's
// started-or-not and the blast-radius budget. Transactions that do not
// journal (claiming alerts and messages, the key/value table, nonces) do
// not take it. Triggers refuse UPDATE, DELETE and TRUNCATE on journal; the
// encoding and Verify are internal/store's, so `riposte journal verify`
// and the auditor recipes work unchanged.
//
// The journal's alert index leaves out alert.received (schema version 3,
// as SQLite's schema 2): those entries' ids are random, and indexing them cost a
// leaf page touched, and its WAL, per accepted alert. The inbox row keeps
// its alert.received entry's seq (received_seq) instead, so
// Filter.AlertID finds every entry of an alert through indexes while the
// alert is in the inbox, and by a scan of the journal once Prune removed
// it (BenchmarkAlertIndex: 3.4 KB of WAL per accepted alert before, 1.5
// KB after). Likewise, from schema version 5 (as SQLite's 5), the entries
// of an alert settled at its accept (journal.via_inbox): they follow its
// alert.received up to the inbox row's settled_seq.
//
// # Claims and leases across replicas
//
// ClaimAlerts and ClaimOutbox select with FOR UPDATE SKIP LOCKED and set
// owner and lease in the same statement: two replicas never claim one row.
// Unlike SQLite, where a claim by another owner means a process that is
// gone, here another owner is a replica that may be alive: its claims hold
// until their lease runs out, and then any replica takes the work over
// (Attempts counts it). A live replica keeps the alerts it works on with
// ExtendClaims (the engine renews every third of a lease), and Close hands
// a handle's unfinished claims back at once; only a replica that dies
// leaves its work to the lease. An action run started by another owner is
// reported in doubt (store.ClaimInDoubt) when the alert comes back: the
// engine then decides by the action's idempotency, as after a restart.
package postgres
