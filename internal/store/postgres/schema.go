package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/riposte-sec/riposte/internal/store"
)

// migrations[i] takes the schema from version i to i+1. Append only: a
// released migration is never edited. Times are text as store.FormatTime
// writes them (RFC 3339 UTC, nine fraction digits: they sort as text), so
// that the journal's hashed fields are the stored ones, as in SQLite.
var migrations = []string{
	// 1: everything.
	`
CREATE TABLE inbox (
  n                 BIGSERIAL UNIQUE,          -- arrival order
  id                TEXT PRIMARY KEY,
  raw               TEXT NOT NULL,
  received_at       TEXT NOT NULL,
  state             TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processing', 'done')),
  attempts          INTEGER NOT NULL DEFAULT 0,
  owner             TEXT NOT NULL DEFAULT '',
  lease_until       TEXT NOT NULL DEFAULT '',
  duplicates        INTEGER NOT NULL DEFAULT 0,
  last_duplicate_at TEXT NOT NULL DEFAULT '',
  done_at           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inbox_waiting ON inbox (n) WHERE state IN ('pending', 'processing');
CREATE INDEX inbox_done ON inbox (done_at) WHERE state = 'done';

CREATE TABLE journal (
  seq       BIGINT PRIMARY KEY,
  time      TEXT NOT NULL,
  type      TEXT NOT NULL,
  alert_id  TEXT NOT NULL DEFAULT '',
  playbook  TEXT NOT NULL DEFAULT '',
  action    TEXT NOT NULL DEFAULT '',
  actor     TEXT NOT NULL DEFAULT '',
  detail    TEXT NOT NULL DEFAULT '{}',
  sha256    TEXT NOT NULL DEFAULT '',
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX journal_alert ON journal (alert_id);
CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'journal is append-only';
END $$;
CREATE TRIGGER journal_no_change BEFORE UPDATE OR DELETE ON journal
  FOR EACH ROW EXECUTE FUNCTION journal_append_only();
CREATE TRIGGER journal_no_truncate BEFORE TRUNCATE ON journal
  FOR EACH STATEMENT EXECUTE FUNCTION journal_append_only();

-- One row: the chain's head. Every transaction that journals locks it
-- first (SELECT ... FOR UPDATE), which serialises appends across replicas.
CREATE TABLE journal_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  BIGINT NOT NULL,
  hash TEXT NOT NULL,
  time TEXT NOT NULL
);
INSERT INTO journal_head (id, seq, hash, time) VALUES (1, 0, '` + store.GenesisHash + `', '');

CREATE TABLE incidents (
  id           TEXT PRIMARY KEY,
  container_id TEXT NOT NULL,
  rule         TEXT NOT NULL,
  state        TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'released')),
  opened_at    TEXT NOT NULL,
  last_seen    TEXT NOT NULL,
  alerts       INTEGER NOT NULL DEFAULT 1,
  released_at  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incidents_open ON incidents (container_id, rule, last_seen) WHERE state = 'open';
CREATE INDEX incidents_opened ON incidents (opened_at);

CREATE TABLE action_runs (
  alert_id    TEXT NOT NULL,
  playbook    TEXT NOT NULL,
  idx         INTEGER NOT NULL,
  action      TEXT NOT NULL,
  incident    TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL CHECK (state IN ('planned', 'started', 'succeeded', 'failed', 'skipped', 'held')),
  destructive BOOLEAN NOT NULL DEFAULT false,
  result      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,
  owner       TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  started_at  TEXT NOT NULL DEFAULT '',
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (alert_id, playbook, idx)
);
CREATE INDEX action_runs_open ON action_runs (created_at) WHERE state IN ('planned', 'started', 'held');
CREATE INDEX action_runs_destructive ON action_runs (started_at) WHERE destructive;

CREATE TABLE approvals (
  id         TEXT PRIMARY KEY,
  alert_id   TEXT NOT NULL,
  playbook   TEXT NOT NULL,
  idx        INTEGER NOT NULL,
  action     TEXT NOT NULL,
  incident   TEXT NOT NULL DEFAULT '',
  deadline   TEXT NOT NULL,
  state      TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'granted', 'denied', 'expired')),
  decided_by TEXT NOT NULL DEFAULT '',
  note       TEXT NOT NULL DEFAULT '',
  detail     TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL,
  decided_at TEXT NOT NULL DEFAULT '',
  UNIQUE (alert_id, playbook, idx),
  FOREIGN KEY (alert_id, playbook, idx) REFERENCES action_runs (alert_id, playbook, idx) ON DELETE CASCADE
);
CREATE INDEX approvals_pending ON approvals (deadline) WHERE state = 'pending';

CREATE TABLE outbox (
  id          BIGSERIAL PRIMARY KEY,
  key         TEXT NOT NULL UNIQUE,
  kind        TEXT NOT NULL,
  target      TEXT NOT NULL DEFAULT '',
  incident    TEXT NOT NULL DEFAULT '',
  payload     TEXT NOT NULL,
  state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done', 'dead')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  next_at     TEXT NOT NULL,
  owner       TEXT NOT NULL DEFAULT '',
  last_error  TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_at) WHERE state IN ('pending', 'leased');

CREATE TABLE kv (
  ns         TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (ns, key)
);
`,
	// 2: silences (store/silences.go), never deleted.
	`
CREATE TABLE silences (
  id          TEXT PRIMARY KEY,
  matcher     TEXT NOT NULL,
  scope       TEXT NOT NULL CHECK (scope IN ('notify', 'all')),
  starts_at   TEXT NOT NULL,
  ends_at     TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  approved_by TEXT NOT NULL DEFAULT '',
  comment     TEXT NOT NULL DEFAULT '',
  state       TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('pending', 'active', 'expired', 'ended', 'deleted')),
  ended_by    TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  updated_at  TEXT NOT NULL
);
CREATE INDEX silences_ends ON silences (ends_at);
`,
	// 3: the journal's alert index leaves out alert.received, as SQLite's
	// schema 2 does: its alert ids are random, so every accepted alert
	// wrote a leaf page of that index (and its WAL) no lookup needed. The
	// inbox row keeps the seq of its alert.received entry instead (a
	// column of a row written anyway); rows already there get theirs from
	// the journal before the old index goes.
	`
ALTER TABLE inbox ADD COLUMN received_seq BIGINT NOT NULL DEFAULT 0;
UPDATE inbox SET received_seq = j.seq FROM journal j WHERE j.alert_id = inbox.id AND j.type = 'alert.received';
DROP INDEX journal_alert;
CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received';
`,
	// 4: cluster mode: the actions addressed to a node's agent, and the
	// agents' heartbeats.
	`
CREATE TABLE node_actions (
  key         TEXT PRIMARY KEY,
  node        TEXT NOT NULL,
  action      TEXT NOT NULL,
  payload     TEXT NOT NULL,
  state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'succeeded', 'failed')),
  agent       TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,
  lease_until TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  finished_at TEXT NOT NULL DEFAULT '',
  result      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX node_actions_open ON node_actions (node, created_at) WHERE state IN ('pending', 'claimed');
CREATE TABLE agents (
  node    TEXT PRIMARY KEY,
  agent   TEXT NOT NULL,
  seen_at TEXT NOT NULL
);
`,
	// 5: as SQLite's schema 5: an alert settled at its accept
	// (AcceptSettled) has its entries right after its alert.received, in
	// one transaction; its inbox row keeps the seq of the last of them
	// (settled_seq), and those entries (via_inbox) stay out of the
	// journal's alert index, whose random alert ids cost a leaf page, and
	// its WAL, per alert. via_inbox is not hashed: it says where an entry
	// is indexed, not what it says. Adding a column with a constant
	// default rewrites neither table.
	`
ALTER TABLE inbox ADD COLUMN settled_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN via_inbox BOOLEAN NOT NULL DEFAULT false;
DROP INDEX journal_alert;
CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received' AND NOT via_inbox;
`,
}

// SchemaVersion is the schema this code reads and writes.
var SchemaVersion = len(migrations)

// migrateLock is the advisory lock key that serialises migrations of
// replicas starting at once.
const migrateLock = 0x72697073 // "rips"

// migrate brings the schema up to SchemaVersion in one transaction, under
// an advisory lock: replicas starting together migrate once.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	// A replica waits for another's migration however long it takes (a
	// backfill over a large inbox), not for the sessions' lock_timeout.
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = 0`); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
		return fmt.Errorf("migrate schema: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate schema: create schema_version: %w", err)
	}
	v, err := version(ctx, tx)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
		v, err = 0, nil
	}
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	if v > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this riposte's %d", v, SchemaVersion)
	}
	for ; v < SchemaVersion; v++ {
		if _, err := tx.Exec(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("migrate schema: commit: %w", err)
	}
	return nil
}

func version(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var v int
	err := q.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	return v, err
}

// checkVersion is for read-only handles: the schema must be there and be
// the one this code reads.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) error {
	v, err := version(ctx, pool)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return errors.New("not a riposte store (schema_version is empty)")
	case err != nil && strings.Contains(err.Error(), "does not exist"):
		return errors.New("not a riposte store (no schema_version table)")
	case err != nil:
		return err
	case v != SchemaVersion:
		return fmt.Errorf("schema version %d, this riposte reads %d", v, SchemaVersion)
	}
	return nil
}
