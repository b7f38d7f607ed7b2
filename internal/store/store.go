package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// ReadOnly opens an existing file for reading only: no lock, no
	// migration, every write returns ErrReadOnly.
	ReadOnly bool
	// IncidentWindow: an alert joins the open incident of its container
	// and rule when it comes within this long of the incident's last alert.
	// Default 10m.
	IncidentWindow time.Duration
	// ClockSkew is how far a sender's alert time may be from the time the
	// alert was received and still group it into incidents; beyond it the
	// receive time is used, so that an alert dated 2099 (or 1970) cannot
	// hold an incident open for every later alert. Default 5m.
	ClockSkew time.Duration
	// DuplicateWindow is how long Prune keeps processed alerts, so that a
	// repeated id is recognised as a duplicate. Default 24h.
	DuplicateWindow time.Duration
	// MaxBatch bounds the rows (alerts, entries, updates) one transaction
	// takes. Default 4096. 1 gives every request its own transaction
	// (consecutive transactions may still share an fsync).
	MaxBatch int
	// Queue is how many write requests may wait for the writer. Default 4096.
	Queue int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger; default discards.
	Logger *slog.Logger

	// syncEachCommit makes every commit wait for its own fsync (tests and
	// the benchmark's one-transaction-per-alert baseline).
	syncEachCommit bool
	// checkpointInWriter lets the writer's connection checkpoint itself
	// (wal_autocheckpoint(512)) instead of the background checkpointer:
	// round 1's behaviour, kept as the benchmarks' baseline.
	checkpointInWriter bool
	// indexReceived puts alert.received entries back in the journal's alert
	// index (schema version 1's index): the benchmarks' baseline.
	indexReceived bool
	// indexSettled puts the entries of settled alerts back in the journal's
	// alert index (schema version 4's index): the benchmarks' baseline.
	indexSettled bool
}

func (o *Options) defaults() {
	if o.IncidentWindow <= 0 {
		o.IncidentWindow = 10 * time.Minute
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 5 * time.Minute
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 24 * time.Hour
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Store is the SQLite implementation of Backend. See the package doc.
type Store struct {
	path  string
	opts  Options
	owner string // this process's claims and leases
	log   *slog.Logger

	rdb  *sql.DB // readers
	wdb  *sql.DB // the writer's single connection; nil when read-only
	w    *writer
	ckpt *checkpointer // nil when read-only, or when the writer checkpoints (checkpointInWriter)
	lock *os.File

	closeOnce sync.Once
	closeErr  error
}

// readers is the size of the read pool.
const readers = 4

// Open opens (creating it unless opts.ReadOnly) the store at path; see
// PathIn. The caller closes the Store.
func Open(path string, opts Options) (*Store, error) {
	opts.defaults()
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{path: abs, opts: opts, log: opts.Logger, owner: newOwner()}
	if opts.ReadOnly {
		if err := s.openReadOnly(); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
		return s, nil
	}
	if err := s.openWritable(); err != nil {
		s.closeAll()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

func (s *Store) openReadOnly() error {
	if _, err := os.Stat(s.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errors.New("no such file")
		}
		return err
	}
	db, err := sql.Open("sqlite", dsn(s.path, "ro"))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(readers)
	s.rdb = db
	ctx := context.Background()
	v, err := schemaVersion(ctx, db)
	if err != nil {
		db.Close()
		if strings.Contains(err.Error(), "no such table") {
			return errors.New("not a riposte store (no schema_version table)")
		}
		return err
	}
	if v != SchemaVersion {
		db.Close()
		return fmt.Errorf("schema version %d, this riposte reads %d", v, SchemaVersion)
	}
	return nil
}

func (s *Store) openWritable() error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return err
	}
	lock, err := lockFile(s.path + ".lock")
	if err != nil {
		return err
	}
	s.lock = lock

	kind := "rw"
	if s.opts.checkpointInWriter {
		kind = "rw-autocheckpoint"
	}
	wdb, err := sql.Open("sqlite", dsn(s.path, kind))
	if err != nil {
		return err
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)
	s.wdb = wdb
	ctx := context.Background()
	conn, err := wdb.Conn(ctx)
	if err != nil {
		return err
	}
	if err := checkPragmas(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	if err := migrate(ctx, conn); err != nil {
		conn.Close()
		return err
	}
	if s.opts.indexSettled {
		if _, err := conn.ExecContext(ctx, `DROP INDEX journal_alert; CREATE INDEX journal_alert ON journal (alert_id) WHERE type <> 'alert.received'`); err != nil {
			conn.Close()
			return err
		}
	}
	if s.opts.indexReceived {
		if _, err := conn.ExecContext(ctx, `DROP INDEX journal_alert; CREATE INDEX journal_alert ON journal (alert_id)`); err != nil {
			conn.Close()
			return err
		}
	}
	w, err := newWriter(s, conn)
	if err != nil {
		conn.Close()
		return err
	}
	s.w = w
	// The WAL exists now (migrate read the database through it) and stays
	// while the writer's connection is open; its fsync is the commit point.
	if w.wal, err = os.OpenFile(s.path+"-wal", os.O_RDWR, 0); err != nil {
		return fmt.Errorf("open write-ahead log: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return err
	}

	rdb, err := sql.Open("sqlite", dsn(s.path, "reader"))
	if err != nil {
		return err
	}
	rdb.SetMaxOpenConns(readers)
	rdb.SetMaxIdleConns(readers)
	s.rdb = rdb
	if !s.opts.checkpointInWriter {
		if s.ckpt, err = newCheckpointer(s); err != nil {
			return err
		}
		go s.ckpt.loop()
	}
	go w.loop()
	go w.syncLoop()
	return nil
}

// syncDir makes the directory entries of the database and its WAL durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// checkPragmas makes sure the durability settings took: a file system
// without shared memory, for one, silently stays out of WAL.
func checkPragmas(ctx context.Context, conn *sql.Conn) error {
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal_mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %s, want wal", mode)
	}
	var sync int
	if err := conn.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous: %w", err)
	}
	if sync != 1 {
		return fmt.Errorf("synchronous is %d, want 1 (NORMAL, with the writer's own fsync)", sync)
	}
	return nil
}

// dsn builds the driver's data source name. kind: "rw" (the writer;
// "rw-autocheckpoint" when it checkpoints itself), "checkpoint" (the
// checkpointer),
// "reader" (the writable store's read pool) or "ro" (a read-only store).
func dsn(path, kind string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(1)")
	switch kind {
	case "rw", "rw-autocheckpoint":
		// No page_size: the driver runs these in name order, so
		// journal_mode(WAL) would come first and a page size after it never
		// takes. Files have SQLite's 4096-byte pages, which suit the random
		// alert-id indexes (a commit writes each dirty page whole).
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(NORMAL)") // + the writer's own fsync; doc.go
		if kind == "rw" {
			q.Add("_pragma", "wal_autocheckpoint(0)") // the checkpointer's job
		} else {
			q.Add("_pragma", "wal_autocheckpoint(512)")
		}
		q.Add("_pragma", "journal_size_limit(67108864)")
		// 4 MiB: the pages every commit writes (the tails, the incidents)
		// stay; the random leaves of the inbox's id index outgrow any cache
		// and come from the kernel's page cache. 16 MiB wrote and read as
		// fast and cost 21 MB more RSS under load (scripts/bench-intake.sh).
		q.Add("_pragma", "cache_size(-4096)")
	case "checkpoint":
		q.Add("_pragma", "synchronous(NORMAL)") // a checkpoint syncs the WAL, then the database
		q.Add("_pragma", "wal_autocheckpoint(0)")
		q.Add("_pragma", "journal_size_limit(67108864)")
	case "reader":
		q.Add("_pragma", "query_only(1)")
	case "ro":
		q.Set("mode", "ro")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

func newOwner() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return fmt.Sprintf("%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
}

// Path returns the SQLite file.
func (s *Store) Path() string { return s.path }

// Close lets queued writes commit, then closes the file. It is safe to call
// more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.w != nil {
			s.w.close()
		}
		s.closeErr = s.closeAll()
	})
	return s.closeErr
}

func (s *Store) closeAll() error {
	var errs []error
	if s.ckpt != nil {
		errs = append(errs, s.ckpt.close())
	}
	if s.rdb != nil {
		errs = append(errs, s.rdb.Close())
	}
	if s.w != nil && s.w.conn != nil {
		errs = append(errs, s.w.conn.Close())
	}
	if s.w != nil && s.w.wal != nil {
		errs = append(errs, s.w.wal.Close())
	}
	if s.wdb != nil {
		errs = append(errs, s.wdb.Close())
	}
	if s.lock != nil {
		errs = append(errs, s.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

func (s *Store) now() time.Time { return s.opts.Now().UTC() }
