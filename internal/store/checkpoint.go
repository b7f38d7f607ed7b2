package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL into the
// database. At the writer's peak (~50 MB of WAL a second) the WAL stays
// within a few megabytes; when nothing was written a round costs a read of
// the WAL index.
const checkpointEvery = 200 * time.Millisecond

// checkpointer moves the WAL's frames into the database from its own
// connection, so that the writer never stops a batch to do it (its
// connection runs wal_autocheckpoint(0)). A PASSIVE checkpoint takes no
// lock that the writer or readers wait for: it copies what no reader still
// needs, and the writer restarts the WAL from its start once everything was
// copied. SQLite syncs the WAL before copying and the database after, so
// durability does not depend on it: a crash mid-way replays the WAL.
//
// A WAL restart costs an fsync inside the COMMIT that does it: SQLite
// writes the new WAL header and syncs it before the first frame (its guard
// against out-of-order writes after a restart), even with synchronous=
// NORMAL. Left to itself, that COMMIT is the first write after everything
// was copied, which on a quiet system is the next alert's, so every alert
// after a pause of 200ms waited for it (about a millisecond here, before
// even an urgent write is answered). So once a round copied everything,
// the checkpointer restarts the WAL itself with a write of its own that
// nobody waits for (restartWAL), and a round with no commit since the
// last one does nothing: the restart's own frame stays in the WAL until
// real writes follow it.
type checkpointer struct {
	s    *Store
	db   *sql.DB
	stop chan struct{}
	done chan struct{}
	seen int64 // the writer's commits when the last round ran (loop only)

	rounds   atomic.Int64 // checkpoints that copied frames (benchmarks)
	frames   atomic.Int64 // frames copied
	restarts atomic.Int64 // WAL restarts by restartWAL (tests)
}

func newCheckpointer(s *Store) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(s.path, "checkpoint"))
	if err != nil {
		return nil, fmt.Errorf("open checkpoint connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return &checkpointer{s: s, db: db, stop: make(chan struct{}), done: make(chan struct{})}, nil
}

func (c *checkpointer) loop() {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if err := c.checkpoint(); err != nil {
				// Not fatal: the WAL grows until a later round succeeds.
				c.s.log.Warn("checkpoint write-ahead log", "err", err)
			}
		}
	}
}

// checkpoint runs one PASSIVE checkpoint, when anything was committed
// since the last, and restarts the WAL when it copied everything.
func (c *checkpointer) checkpoint() error {
	commits := c.s.w.commits.Load()
	if commits == c.seen {
		return nil
	}
	c.seen = commits
	var busy, log, copied int64
	if err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied); err != nil {
		return err
	}
	if copied > 0 {
		c.rounds.Add(1)
		c.frames.Add(copied)
	}
	if busy != 0 || log <= 0 || copied != log {
		return nil // frames left: the next write appends, no restart
	}
	if err := c.s.write(context.Background(), 1, restartWAL); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil // closing: the next open starts afresh
		}
		return fmt.Errorf("restart write-ahead log: %w", err)
	}
	c.restarts.Add(1)
	c.seen = c.s.w.commits.Load()
	return nil
}

// restartWAL restarts a WAL whose frames were all copied, and pays for
// its header's sync: it records when, in the key/value table (namespace
// store). A write must change a page to write a frame: SQLite leaves a
// row rewritten as it was out of the WAL.
func restartWAL(t *wtx) error {
	_, err := t.exec(`INSERT INTO kv (ns, key, value, updated_at) VALUES ('store', 'wal.restarted', ?, ?)
		ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		FormatTime(t.now), FormatTime(t.now))
	return err
}

// close stops the loop (a round in progress finishes) and closes the
// connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
