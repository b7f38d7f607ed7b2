package store

import (
	"context"
	"database/sql"
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
type checkpointer struct {
	s    *Store
	db   *sql.DB
	stop chan struct{}
	done chan struct{}

	rounds atomic.Int64 // checkpoints that copied frames (benchmarks)
	frames atomic.Int64 // frames copied
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

// checkpoint runs one PASSIVE checkpoint.
func (c *checkpointer) checkpoint() error {
	var busy, log, copied int64
	if err := c.db.QueryRowContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied); err != nil {
		return err
	}
	if copied > 0 {
		c.rounds.Add(1)
		c.frames.Add(copied)
	}
	return nil
}

// close stops the loop (a round in progress finishes) and closes the
// connection.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
