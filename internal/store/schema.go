package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// migrations[i] takes the schema from version i to i+1. Append only: a
// released migration is never edited.
var migrations = []string{
	// 1: everything.
	`
CREATE TABLE inbox (
  id                TEXT PRIMARY KEY NOT NULL,   -- alert uuid or deterministic id
  raw               TEXT NOT NULL,               -- the alert, Falco JSON shape
  received_at       TEXT NOT NULL,               -- RFC 3339 UTC, 9 fraction digits
  state             TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'processing', 'done')),
  attempts          INTEGER NOT NULL DEFAULT 0,  -- claims
  owner             TEXT NOT NULL DEFAULT '',    -- process that claimed it
  lease_until       TEXT NOT NULL DEFAULT '',
  duplicates        INTEGER NOT NULL DEFAULT 0,  -- accepts of the same id after the first
  last_duplicate_at TEXT NOT NULL DEFAULT '',
  done_at           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX inbox_state ON inbox (state);

CREATE TABLE journal (
  seq       INTEGER PRIMARY KEY,
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
CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
  BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;
CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
  BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;

CREATE TABLE journal_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  INTEGER NOT NULL,
  hash TEXT NOT NULL,
  time TEXT NOT NULL
);

CREATE TABLE incidents (
  id           TEXT PRIMARY KEY NOT NULL,
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
  destructive INTEGER NOT NULL DEFAULT 0,
  result      TEXT NOT NULL DEFAULT '',    -- actions.Result as JSON
  error       TEXT NOT NULL DEFAULT '',
  attempts    INTEGER NOT NULL DEFAULT 0,  -- starts
  owner       TEXT NOT NULL DEFAULT '',    -- process that started it
  created_at  TEXT NOT NULL,
  started_at  TEXT NOT NULL DEFAULT '',
  updated_at  TEXT NOT NULL,
  PRIMARY KEY (alert_id, playbook, idx)
);
CREATE INDEX action_runs_open ON action_runs (created_at) WHERE state IN ('planned', 'started', 'held');
CREATE INDEX action_runs_destructive ON action_runs (started_at) WHERE destructive = 1;

CREATE TABLE approvals (
  id         TEXT PRIMARY KEY NOT NULL,
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
  id          INTEGER PRIMARY KEY,
  key         TEXT NOT NULL UNIQUE,           -- idempotency key
  kind        TEXT NOT NULL,
  target      TEXT NOT NULL DEFAULT '',
  incident    TEXT NOT NULL DEFAULT '',
  payload     TEXT NOT NULL,                  -- JSON
  state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'leased', 'done', 'dead')),
  attempts    INTEGER NOT NULL DEFAULT 0,     -- leases
  next_at     TEXT NOT NULL,                  -- due time; for a leased message, its lease end
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
) WITHOUT ROWID;
`,
	// 2: the journal's alert index leaves out alert.received, whose alert
	// ids are random: one leaf page per accepted alert was 2.4 of the 5.8
	// pages an accept wrote. The inbox keeps the seq of its alert's
	// alert.received entry instead (a column of a row written anyway).
	`
ALTER TABLE inbox ADD COLUMN received_seq INTEGER NOT NULL DEFAULT 0;
DROP INDEX journal_alert;
CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received';
`,
	// 3: silences (silences.go). Never deleted: what was in force at a
	// past time stays known.
	`
CREATE TABLE silences (
  id          TEXT PRIMARY KEY NOT NULL,
  matcher     TEXT NOT NULL,                 -- SilenceMatcher as JSON
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
	// 4: cluster mode: the actions addressed to a node's agent, and the
	// agents' heartbeats.
	`
CREATE TABLE node_actions (
  key         TEXT PRIMARY KEY NOT NULL,  -- the action's idempotency key
  node        TEXT NOT NULL,
  action      TEXT NOT NULL,
  payload     TEXT NOT NULL,              -- JSON
  state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'claimed', 'succeeded', 'failed')),
  agent       TEXT NOT NULL DEFAULT '',   -- the agent that claimed it last
  attempts    INTEGER NOT NULL DEFAULT 0, -- claims
  lease_until TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL,
  finished_at TEXT NOT NULL DEFAULT '',
  result      TEXT NOT NULL DEFAULT '',   -- JSON
  error       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX node_actions_open ON node_actions (node, created_at) WHERE state IN ('pending', 'claimed');
CREATE TABLE agents (
  node    TEXT PRIMARY KEY NOT NULL,
  agent   TEXT NOT NULL,
  seen_at TEXT NOT NULL
);
`,
	// 5: an alert settled at its accept (AcceptSettled) has its entries
	// right after its alert.received, in one transaction: its inbox row
	// keeps the seq of the last of them (settled_seq), and those entries
	// (via_inbox = 1) stay out of the journal's alert index, whose random
	// alert ids cost a leaf page per alert. via_inbox is not hashed: it
	// says where an entry is indexed, not what it says.
	`
ALTER TABLE inbox ADD COLUMN settled_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE journal ADD COLUMN via_inbox INTEGER NOT NULL DEFAULT 0;
DROP INDEX journal_alert;
CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received' AND via_inbox = 0;
`,
	// 6: the inbox's state index holds only the alerts still to process
	// (claims read it; a done alert leaves it): an alert settled at its
	// accept, inserted done, writes no index entry, and the done alerts of
	// a day are not kept in an index nothing reads them by. Prune and
	// History, which select done alerts, scan the inbox in arrival order, as
	// they scanned the done entries of the index before. Queries name both
	// states (state = 'pending' OR state = 'processing' when they count
	// both), the form SQLite matches a partial index by.
	// And the open incidents' index leaves out last_seen, which every
	// batch moves for each incident its alerts join: the update rewrote
	// the row and moved its index entry, a second page per commit. The
	// lookup sorts the open incidents of one container and rule (one, or a
	// few), and only when the writer does not remember it (openIncident).
	`
DROP INDEX inbox_state;
CREATE INDEX inbox_open ON inbox (state) WHERE state = 'pending' OR state = 'processing';
DROP INDEX incidents_open;
CREATE INDEX incidents_open ON incidents (container_id, rule) WHERE state = 'open';
`,
}

// SchemaVersion is the schema this code reads and writes.
var SchemaVersion = len(migrations)

// migrate brings the schema up to SchemaVersion, one transaction per step.
func migrate(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	for {
		v, err := schemaVersion(ctx, conn)
		if err != nil {
			return err
		}
		if v > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this riposte's %d", v, SchemaVersion)
		}
		if v == SchemaVersion {
			return nil
		}
		if err := migrateStep(ctx, conn, v); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
	}
}

func migrateStep(ctx context.Context, conn *sql.Conn, from int) (err error) {
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	// Re-read inside the write lock: another process may have migrated.
	v, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if v == from {
		if _, err := conn.ExecContext(ctx, migrations[from]); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `DELETE FROM schema_version`); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, from+1); err != nil {
			return err
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q queryer) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
