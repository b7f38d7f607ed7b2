// Package store is riposte's durable state: the inbox of accepted alerts,
// incidents, action runs (idempotency), approvals, the notification outbox,
// notifier threads, silences (silences.go), and the hash-chained
// incident-response journal. The interfaces (Backend and the smaller Inbox,
// Journal, Incidents, ActionRuns, Approvals, Outbox, Threads, Silences,
// History) are what the engine, server and notifiers
// depend on; *Store implements them on one SQLite file (modernc.org/sqlite,
// pure Go) at PathIn(dataDir) = <data>/riposte.db. internal/store/postgres
// is the second implementation, for replicas sharing one database; both
// pass the conformance suite internal/store/storetest. The journal's
// encoding (Row.Canonical, Row.ComputeHash, HashEntry), its check
// (VerifyRows) and the input rules (kit.go) are backend-independent.
//
// # Opening, closing, concurrency
//
// Open(path, Options{}) creates the file and its directory, migrates the
// schema (table schema_version) and takes an exclusive lock on
// <path>.lock: one process writes a data directory at a time, which is what
// makes "claimed by another owner" mean "claimed by a process that died"
// (see Action runs and Outbox). Open(path, Options{ReadOnly: true}) is for readers
// such as `riposte journal show|verify`: no lock, no migration, no writes;
// it works while the server runs.
//
// A *Store is safe for concurrent use by any number of goroutines. The
// caller of Open owns it and calls Close once; Close lets the writes
// already queued commit, then fails new ones with ErrClosed and closes the
// file. Nothing else needs closing: Scan's iterator releases its rows when
// the loop ends.
//
// # Writes: one writer, group commit
//
// Every write goes through one writer goroutine that owns the only write
// connection, and one syncer goroutine that owns the fsync. The writer
// opens a transaction (BEGIN IMMEDIATE) for the first request, executes
// requests as they arrive (concurrent Accepts merged into multi-row
// statements), and commits when the syncer is idle or the batch reached
// Options.MaxBatch rows; the syncer fsyncs the WAL once for every batch
// committed since its last fsync and only then answers their callers. So
// the next batch executes while the previous one is being synced, and under
// load a batch grows for as long as an fsync takes: concurrent callers share
// one fsync without any timer. Journal appends go through the same writer,
// which keeps them in one order (the hash chain needs it).
//
// A request that fails after writing is rolled back alone: the open
// transaction is rolled back and replayed with a savepoint per request, and
// only its caller gets the error. If a caller's ctx ends while its request
// waits, the call returns ctx.Err() and the request may still commit: every
// write is idempotent, so retrying is safe. Reads use a separate pool of
// read-only connections and never wait for the writer.
//
// The writer never checkpoints (its connection runs wal_autocheckpoint(0)):
// a checkpointer goroutine with its own connection runs PRAGMA
// wal_checkpoint(PASSIVE) every 200 ms, copying the WAL into the database
// without taking a lock the writer waits for, in rounds that have commits
// to copy. Once everything is copied the next write starts the WAL over,
// and SQLite syncs the new WAL header inside that COMMIT, even with
// synchronous=NORMAL; so the checkpointer does that write itself (it
// records the time as store/wal.restarted in the key/value table), and no
// caller's COMMIT, least of all the next alert's after a quiet moment,
// waits for that sync. Close stops it before the connections close.
//
// # Durability
//
// WAL mode, synchronous=NORMAL, plus the syncer's own fsync of the -wal
// file: with NORMAL, COMMIT write()s the transaction's frames to the WAL
// and returns without syncing (SQLite still syncs the WAL before each
// checkpoint and the database after it). The syncer then calls fsync on
// the WAL file, which makes every frame written before the call durable,
// and answers the callers only when fsync returned. So every call that
// returned without an error (an Accept's 202, a recorded action, an
// enqueued message, an appended entry) survives a process crash (kill -9)
// and a power loss, provided the disk honours flushes: the same promise as
// synchronous=FULL, with one fsync per group instead of one per COMMIT
// inside the write lock. Two consequences to know:
//
//   - Between COMMIT and fsync (about a millisecond) other connections can
//     read data that is not yet durable. No write call answers before its
//     data is durable (urgent ones aside, below), and fsyncs complete in
//     commit order, so anything the engine does after a call returned
//     rests on durable state; only plain reads (Entries, GetIncident, ...)
//     may show the last batch a moment early, and a power loss in that
//     moment takes it back.
//   - If fsync fails, the kernel may have dropped the dirty pages: the
//     store refuses every later write with that error (PostgreSQL does the
//     same) until riposte restarts and recovers from what reached the disk.
//
// Urgent writes (a ctx from Urgent, urgent.go) are the one exception, for
// the path from the detector's alert to containment: the writer commits
// the open batch as soon as one arrives, instead of waiting for the syncer
// to be idle, and answers it when COMMIT returned, before the fsync. The
// syncer fsyncs that commit next anyway (it runs for a batch with nothing
// left to answer), and any ordinary write answered after it is durable
// with it, since fsyncs cover the WAL in commit order. So an urgent write
// survives a crash of the process (its frames are in the kernel's page
// cache), and is lost only with a power cut or an operating-system crash
// in the millisecond before that fsync, or when the fsync fails (the store
// is then broken as above and refuses every later write, urgent or not).
// A WAL loses a suffix: what is lost is the last urgent commits, never a
// hole in the journal's chain. PostgreSQL honours it too, with
// synchronous_commit off for the urgent write's transaction only (see
// internal/store/postgres, Transactions and durability). Two callers use
// it, both safe to lose:
//
//   - the engine's own detector alerts (engine.Submit): no sender waits
//     for a 202 and would resend; the kernel event that made the alert is
//     gone in the same power cut, stored or not. Webhook alerts
//     (engine.Accept, the server's intake) are never urgent: their 202
//     means on disk.
//   - the claim of an action that is harmless to run again
//     (actions.Spec.Idempotent: container.pause, containerd.pause). If the
//     claim is lost, the action ran without its action.started; after the
//     restart the alert, if it was durable, is processed again and the
//     action claimed and run again (pausing a paused or frozen container
//     is a no-op), or, if the alert was lost too, nothing refers to it.
//     Local containers are not paused any more after a power cut anyway
//     (their processes are gone); a container on a remote Docker daemon
//     stays paused with no record of why, which `docker ps` shows. The
//     blast-radius budget and the protected-container check run exactly as
//     for any other claim: urgent changes when the answer comes, not what
//     is decided. An action that is not idempotent is never claimed urgent,
//     so a lost claim can never make it run twice.
//
// Open checks that the file really is in WAL mode (a file system without
// shared memory would silently keep a rollback journal), syncs the data
// directory once so the new files' entries are durable. Pages are SQLite's
// 4 KiB: a commit writes every dirty page whole, and the inbox's id index
// dirties a random leaf per alert, so small pages write less (see dsn).
// TestCrashDurability kills a child
// process with SIGKILL mid-stream and checks that every acknowledged alert
// is there exactly once; TestFsyncFailureBreaksStore checks that no answer
// is given when the fsync fails; TestUrgentAnsweredAtCommit,
// TestUrgentCommitsOpenBatch and TestUrgentAfterFailedFsync check urgent
// writes with the fsync held or failing.
//
// # What the store journals itself
//
// Accept journals alert.received (or alert.duplicate) for every alert, and
// Incident journals incident.opened, in the same transaction as the change
// and with actor "riposte": the engine must not write these again. Every
// other entry is the caller's, passed to the write it belongs with
// (RecordAction, ClaimAction, HoldAction, DecideApproval, FinishAlert,
// Enqueue, AckOutbox, ...) so that the entry exists if and only if the
// change does. The store sets each entry's seq and time; times never
// decrease along seq. Filter.Since is a scan of the time column (the
// journal has indexes on seq and alert_id only, to keep appends cheap).
// The alert_id index leaves out alert.received entries: their ids are
// random, and indexing them cost a page per accepted alert. Each inbox row
// holds its alert.received entry's seq instead (received_seq), so
// Filter.AlertID still finds every entry of an alert through indexes while
// the alert is in the inbox, and by a scan once Prune removed it.
//
// AcceptSettled takes, with an alert, what the engine's processing of it
// journals when that runs no responder (dry-run plans, alert.silenced,
// action.enforced): the entries are appended right after the alert's
// alert.received (and incident.opened), in the accept's transaction, and
// the alert is stored done. Their details hold TheIncident where the
// alert's incident id goes, encoded in the caller's goroutine and joined
// with the id in the writer (settle.go). Such entries are contiguous, so
// the inbox row keeps the seq of the last (settled_seq) and they stay out
// of the alert index too (journal.via_inbox = 1, schema version 5; not
// hashed: it says where an entry is indexed, not what it says). The writer
// also remembers each container and rule's open incident
// (openIncident), forgotten on a state change or a rollback, so that the
// open incidents' index needs no last_seen (schema version 6): a batch
// moves it for every incident its alerts join.
//
// # Inbox and duplicates
//
// The inbox is keyed by alert id. Accept stores a new id as pending and
// journals alert.received; an id already there (pending, processing or
// done) is not stored again: its duplicates counter goes up and
// alert.duplicate is journaled, both in the same transaction as the
// batch. The duplicate window is how long done alerts stay in the inbox:
// Prune deletes alerts done before now - Options.DuplicateWindow (and
// their action runs, and the node actions finished as long ago); after
// that the same id is a new alert.
//
// Engine workers ClaimAlerts (pending → processing, with a lease and this
// store as owner) and FinishAlert (→ done). A claimed alert whose lease ran
// out, or that a previous process claimed, is claimable again. Only
// pending and processing alerts are in the inbox's state index (schema
// version 6): a done alert, settled ones included, is never looked up by
// state but by Prune and History, which scan in arrival order.
//
// # Cost, and batching
//
// With modernc.org/sqlite a journal row costs about 4µs of the writer's
// CPU, an action-run row about 5µs, a commit some µs per KiB written; the
// writer is one goroutine, so these add up on one core. Accept merges the
// Accepts that wait together into multi-row statements by itself (about
// 11µs of writer CPU per alert, entry included). For the engine, Apply
// takes a Batch with any number of alerts' changes (runs, entries,
// finished alerts) and writes each kind in one multi-row statement: use
// one Apply per alert, or better one per group of claimed alerts, rather
// than a RecordAction per step. BenchmarkAccept and BenchmarkApplyDryRun
// measure both paths.
//
// # Action runs: exactly once, and in doubt
//
// An action run is keyed by (alert id, playbook, action index). Allowed
// transitions (RecordAction; anything else returns applied=false, changes
// nothing and appends nothing, so a replay after a crash journals each step
// once):
//
//	(none)  → planned, held, started, succeeded, failed, skipped
//	planned → held, started, succeeded, failed, skipped
//	held    → failed, skipped (DecideApproval moves held → planned or skipped)
//	started → succeeded, failed, skipped (a guardrail refused); and started → started when InDoubt (take-over)
//
// ClaimAction is RecordAction(started) for workers: it starts new and
// planned runs and reports Done, Held, Busy or InDoubt otherwise. A run
// that was started by an earlier process and never finished is in doubt:
// the process may have died before the action took effect or after. The
// store cannot know, so it never re-runs it on its own: ClaimAction returns
// ClaimInDoubt and UnfinishedActions lists it with InDoubt set. The engine
// decides per action: idempotent ones (pause, snapshot, notify with the
// outbox key) are taken over with RecordAction(started) and run again,
// others are recorded failed ("in doubt after restart") for a human.
// Finished runs (succeeded, failed, skipped) are never started again.
//
// # Outbox
//
// Enqueue is idempotent on Message.Key. ClaimOutbox leases due messages
// (owner = this store); AckOutbox marks them done; FailOutbox puts them
// back with the retry time the caller computed (Backoff, or the far end's
// Retry-After), or kills them with a zero time. A restart makes messages
// leased by the dead process claimable at once; a lease that runs out in a
// live process makes them claimable again (so a delivery may repeat:
// at-least-once, with the key for the receiver to deduplicate).
//
// A message with a Fold is throttled with the others of its fold key (one
// notifier, one incident): the first goes out at once; one within the
// interval is held in one waiting message, due an interval after the last,
// that later ones join (latest payload, count in OutboxItem.Folded) while
// it is pending. The decision, the fold state (kv namespaces outbox.fold
// and outbox.folded) and the Held journal entry are written in the
// enqueuing transaction; a joined message is kept, settled, under its key,
// so that a repeat of it is a duplicate. A message is joined only while
// pending: one that a replica leases at the same time makes the next wait
// for an interval after it.
//
// # Journal encoding (for auditors)
//
// Each entry is a row of table journal. Its hash is the lowercase hex
// SHA-256 of its canonical encoding, which is exactly what SQLite's
// json_array returns for
//
//	json_array('riposte.journal.v1', seq, time, type, alert_id, playbook,
//	           action, actor, detail, sha256, prev_hash)
//
// that is a JSON array without whitespace: the version string, seq as a
// decimal integer, then ten strings as stored (detail is the JSON object's
// text, as a string). Strings escape '"' and '\' with a backslash, the
// control characters U+0008, U+0009, U+000A, U+000C, U+000D as \b \t \n \f
// \r, other characters below U+0020 as \u00xx (lowercase hex), and nothing
// else (UTF-8 as is). time is RFC 3339 UTC with nine fraction digits
// (2006-01-02T15:04:05.000000000Z); empty fields are "" (never NULL); the
// first entry's prev_hash is 64 zeros and every other prev_hash is the
// previous entry's hash. An auditor recomputes entry 42 with:
//
//	sqlite3 riposte.db "SELECT json_array('riposte.journal.v1',seq,time,type,
//	  alert_id,playbook,action,actor,detail,sha256,prev_hash) FROM journal
//	  WHERE seq=42" | tr -d '\n' | sha256sum
//
// (the encoding holds no raw newline) and compares with its hash column;
// Python's json.dumps(row, ensure_ascii=False, separators=(",", ":"))
// gives the same bytes. The table journal_head (one row) records the last
// seq and hash, updated in the same transaction as the entries; the
// journal table has triggers that refuse UPDATE and DELETE.
//
// # What Verify detects, and what it cannot
//
// Verify reads the whole journal in one read transaction and reports the
// first of: an entry whose content does not hash to its hash column
// (edited; or reordered, when the content hashes right at another seq); a
// gap in seq (removed); an entry whose prev_hash is not the previous
// entry's hash (an edit that recomputed the hash, or a removal with
// renumbering); the last entry not matching journal_head (the tail was cut
// or the head edited); a missing journal_head. It cannot detect a rewrite
// by someone who drops the triggers, recomputes every hash after the edit
// and updates journal_head consistently: the chain only proves integrity
// relative to a head hash kept elsewhere. `riposte journal verify` prints
// the head (seq and hash); recording it outside the machine from time to
// time (a ticket, a Slack message) turns such a rewrite into a detectable
// one. On open, the writer continues from the later of journal_head and
// the last row, so a cut tail stays visible as a gap instead of being
// papered over by new entries.
package store
