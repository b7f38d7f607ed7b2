package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/riposte-sec/riposte/internal/store"
)

// Store is the PostgreSQL implementation of store.Backend. See the package
// doc.
type Store struct {
	pool     *pgxpool.Pool
	opts     store.Options
	owner    string // this handle's claims and leases
	log      *slog.Logger
	readOnly bool
	closed   atomic.Bool
	where    string // the URL without its password, for messages

	// The accepter (group commit of Accepts); see acceptLoop.
	acceptQ    chan *acceptReq
	acceptDone chan struct{}
	qmu        sync.RWMutex // guards qclosed against sends
	qclosed    bool
}

var (
	_ store.Backend = (*Store)(nil)
	_ store.Nonces  = (*Store)(nil)
)

// IsURL reports whether s names a PostgreSQL database (postgres:// or
// postgresql://) rather than a data directory.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Redact returns the URL with its password replaced, for logs and errors.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Open connects to the database at connURL, migrates its schema (unless
// opts.ReadOnly) and returns the store. The caller closes it.
func Open(ctx context.Context, connURL string, opts store.Options) (*Store, error) {
	where := Redact(connURL)
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("open store %s: the URL does not parse as a PostgreSQL connection string", where)
	}
	if cfg.MaxConns < minConns {
		// Engine workers, outbox workers, the accepter and readers each
		// hold a connection for one statement or transaction at a time.
		cfg.MaxConns = minConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		// A server that does not answer fails the write (the intake's
		// 503) instead of holding it; connect_timeout in the URL wins.
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	for k, v := range sessionDefaults {
		// A replica cut off from the server mid-transaction would hold
		// the journal's head row, and with it every replica's appends,
		// until the server noticed the connection was dead: through a
		// partition, hours. The URL's own settings win.
		if _, ok := cfg.ConnConfig.RuntimeParams[k]; !ok {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	defaults(&opts)
	s := &Store{opts: opts, owner: newOwner(), log: opts.Logger, readOnly: opts.ReadOnly, where: where}
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if opts.ReadOnly {
		err = checkVersion(ctx, s.pool)
	} else {
		err = migrate(ctx, s.pool)
	}
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open store %s: %w", where, err)
	}
	if !opts.ReadOnly {
		s.acceptQ, s.acceptDone = make(chan *acceptReq, 4096), make(chan struct{})
		go s.acceptLoop()
	}
	return s, nil
}

func defaults(o *store.Options) {
	if o.IncidentWindow <= 0 {
		o.IncidentWindow = 10 * time.Minute
	}
	if o.ClockSkew <= 0 {
		o.ClockSkew = 5 * time.Minute
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = 24 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func newOwner() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Owner is the name this handle's claims and leases carry.
func (s *Store) Owner() string { return s.owner }

// Close releases this handle's claims (alerts it claimed and did not
// finish go back to pending, leased messages are due again) so that other
// replicas take them at once rather than after the lease, then closes the
// connections. Calls after it fail with store.ErrClosed; it is safe to call
// more than once. A replica that dies without Close keeps its claims until
// their leases run out.
func (s *Store) Close() error {
	s.qmu.Lock()
	if s.qclosed {
		s.qmu.Unlock()
		return nil
	}
	s.qclosed = true
	if s.acceptQ != nil {
		close(s.acceptQ)
	}
	s.qmu.Unlock()
	if s.acceptDone != nil {
		<-s.acceptDone // queued Accepts commit first
	}
	s.closed.Store(true)
	defer s.pool.Close()
	if s.readOnly {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := store.FormatTime(s.now())
	_, err1 := s.pool.Exec(ctx, `UPDATE inbox SET state = 'pending', owner = '', lease_until = ''
		WHERE state = 'processing' AND owner = $1`, s.owner)
	_, err2 := s.pool.Exec(ctx, `UPDATE outbox SET state = 'pending', owner = '', next_at = $2, updated_at = $2
		WHERE state = 'leased' AND owner = $1`, s.owner, now)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("close store %s: release claims: %w", s.where, err)
	}
	return nil
}

func (s *Store) now() time.Time { return s.opts.Now().UTC() }

// wtx is one write transaction. A chain transaction holds the journal head
// row's lock from its start, or from its first reads, sent with the lock
// (headLocked): appends (and every change that journals) are serialised,
// and the entries of one transaction are consecutive.
type wtx struct {
	s     *Store
	ctx   context.Context
	tx    pgx.Tx
	now   time.Time
	chain bool
	head  chainHead
	begun chainHead // the head journal_head holds: at begin, or as recorded
}

type chainHead struct {
	seq  int64
	hash string
	time time.Time
}

// minConns is the smallest pool (pool_max_conns in the URL may raise it).
const minConns = 16

// connectTimeout bounds a connection attempt unless the URL sets one.
const connectTimeout = 5 * time.Second

// sessionDefaults bound what a replica that stops talking mid-transaction
// (partitioned, or frozen) costs the others; riposte's transactions never
// wait on their client between statements, and hold the journal's head
// row for milliseconds. The server ends a session idle in a transaction
// after idle_in_transaction_session_timeout, releasing its locks; a
// statement waiting for a lock longer than lock_timeout fails and its
// transaction is run again (write), so a partitioned replica's statements
// queued behind the stuck holder give up instead of each taking the head
// row in turn, for that long, once it is freed
// (TestClusterReplicaPartitioned/blackhole).
var sessionDefaults = map[string]string{
	"idle_in_transaction_session_timeout": "5s",
	"lock_timeout":                        "2s",
}

// acceptTimeout bounds one group-committed accept transaction: callers
// have their own contexts, but the accepter must not hang on a server
// that stopped answering while Accepts queue behind it.
const acceptTimeout = 30 * time.Second

// retries is how often a transaction that lost a deadlock or
// serialisation race, or waited for a lock past lock_timeout, is run
// again.
const retries = 5

// write runs fn in a transaction and commits it; the call returns only
// after the commit (synchronous_commit: the WAL is flushed), or, when ctx
// is store.Urgent, as soon as the commit record is written (urgentTx).
// fn may run more than once (a retried deadlock): it must set its results
// afresh.
func (s *Store) write(ctx context.Context, chain bool, fn func(*wtx) error) error {
	if s.readOnly {
		return store.ErrReadOnly
	}
	for attempt := 1; ; attempt++ {
		if s.closed.Load() {
			return store.ErrClosed
		}
		err := s.try(ctx, chain, fn)
		if err == nil || attempt >= retries || !retryable(err) {
			return err
		}
	}
}

func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01" || pe.Code == "55P03")
}

// urgentTx begins a transaction whose COMMIT returns before its commit
// record is flushed (synchronous_commit = off, for this transaction only):
// store.Urgent's contract on PostgreSQL. The walwriter flushes it within
// wal_writer_delay, and any synchronous commit after it flushes it too
// (the WAL is flushed in order), so only a crash of PostgreSQL or of its
// machine in between loses it, never a crash of riposte; other sessions
// see its rows at once. The SET rides in the BEGIN's own round trip (two
// statements, one simple query): urgency costs no round trip.
var urgentTx = pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL synchronous_commit = off"}

func (s *Store) try(ctx context.Context, chain bool, fn func(*wtx) error) error {
	var opts pgx.TxOptions
	if store.IsUrgent(ctx) {
		opts = urgentTx
	}
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		if s.closed.Load() {
			return store.ErrClosed
		}
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // a no-op after Commit
	t := &wtx{s: s, ctx: ctx, tx: tx, now: s.now()}
	if chain {
		if err := t.headLocked(tx.QueryRow(ctx, lockHead)); err != nil {
			return err
		}
	}
	if err := fn(t); err != nil {
		return err
	}
	if t.head != t.begun {
		if _, err := tx.Exec(ctx, recordHead,
			t.head.seq, t.head.hash, store.FormatTime(t.head.time)); err != nil {
			return fmt.Errorf("record journal head: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lockHead locks the journal's head row and reads it.
const lockHead = `SELECT seq, hash, time FROM journal_head WHERE id = 1 FOR UPDATE`

// headLocked makes t a chain transaction from the result of lockHead: the
// one write sends on its own for a chain transaction, or one that a
// transaction begun without it (write's chain false) sends with its first
// reads, a round trip less (ClaimAction). t.now is read again after the
// lock, which may have been waited for.
func (t *wtx) headLocked(row pgx.Row) error {
	var ts string
	if err := row.Scan(&t.head.seq, &t.head.hash, &ts); err != nil {
		return fmt.Errorf("lock journal head: %w", err)
	}
	t.head.time, _ = store.ParseTime(ts) // a hand-edited time: verify reports it
	t.begun, t.chain, t.now = t.head, true, t.s.now()
	return nil
}

func (t *wtx) exec(sql string, args ...any) (int64, error) {
	tag, err := t.tx.Exec(t.ctx, sql, args...)
	return tag.RowsAffected(), err
}

func (t *wtx) queryRow(sql string, args ...any) pgx.Row { return t.tx.QueryRow(t.ctx, sql, args...) }

// exists reports whether query (SELECT 1 ...) finds a row: for telling
// "already so" from "not found" after an update changed nothing.
func (t *wtx) exists(query string, args ...any) error {
	var one int
	if err := t.queryRow(query, args...).Scan(&one); err != nil {
		return notFound(err)
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// append numbers, chains, hashes and inserts entries; out, when not nil,
// receives them as stored. Only chain transactions append.
func (t *wtx) append(entries []store.PreparedEntry, out []store.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	rs, h, err := t.chainRows(entries, out)
	if err != nil {
		return err
	}
	rows := make([][]any, len(rs))
	for i := range rs {
		r := &rs[i]
		rows[i] = []any{r.Seq, r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash}
	}
	if _, err := t.tx.CopyFrom(t.ctx, pgx.Identifier{"journal"}, journalCols, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("append journal entries: %w", err)
	}
	t.head = h
	return nil
}

// chainRows numbers, chains and hashes entries after t.head: the journal
// rows, and the head after them (t.head is the caller's to move once they
// are inserted).
func (t *wtx) chainRows(entries []store.PreparedEntry, out []store.Entry) ([]store.Row, chainHead, error) {
	if !t.chain {
		return nil, chainHead{}, errors.New("append outside a chain transaction (a bug)")
	}
	h := t.head
	rows := make([]store.Row, len(entries))
	for i := range entries {
		p := &entries[i]
		at := t.s.now()
		if at.Before(h.time) {
			at = h.time // keep time non-decreasing along seq
		}
		r := store.Row{
			Seq: h.seq + 1, Time: store.FormatTime(at), Type: string(p.Type), AlertID: p.AlertID,
			Playbook: p.Playbook, Action: p.Action, Actor: p.Actor, Detail: p.DetailJSON,
			SHA256: p.SHA256, PrevHash: h.hash,
		}
		r.Hash = r.ComputeHash()
		rows[i] = r
		h = chainHead{seq: r.Seq, hash: r.Hash, time: at}
		if out != nil {
			e, err := r.Entry()
			if err != nil {
				return nil, chainHead{}, err
			}
			out[i] = e
		}
	}
	return rows, h, nil
}

// appendStatements are the statements that append entries and record the
// chain's head after them, for a batch that sends them with other writes
// in one round trip; once it ran, t.recorded(h) with the head returned.
// viaInbox[i] (nil: none) keeps entry i out of the journal's alert index:
// a settled alert's entry, found through its inbox row (schema 5).
func (t *wtx) appendStatements(entries []store.PreparedEntry, viaInbox []bool) ([]statement, chainHead, error) {
	rows, h, err := t.chainRows(entries, nil)
	if err != nil || len(rows) == 0 {
		return nil, t.head, err
	}
	n := len(rows)
	seq := make([]int64, n)
	tm, typ, alertID, pb, action, actor, detail, sum, prev, hash := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range rows {
		r := &rows[i]
		seq[i], tm[i], typ[i], alertID[i], pb[i], action[i], actor[i], detail[i], sum[i], prev[i], hash[i] =
			r.Seq, r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash
	}
	if viaInbox == nil {
		viaInbox = make([]bool, n)
	}
	return []statement{
		{`INSERT INTO journal (seq, time, type, alert_id, playbook, action, actor, detail, sha256, prev_hash, hash, via_inbox)
			SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::boolean[])`,
			[]any{seq, tm, typ, alertID, pb, action, actor, detail, sum, prev, hash, viaInbox}},
		{recordHead, []any{h.seq, h.hash, store.FormatTime(h.time)}},
	}, h, nil
}

// recorded notes that the statements of appendStatements ran: h is the
// chain's head, and journal_head holds it already.
func (t *wtx) recorded(h chainHead) { t.head, t.begun = h, h }

const recordHead = `UPDATE journal_head SET seq = $1, hash = $2, time = $3 WHERE id = 1`

var journalCols = []string{"seq", "time", "type", "alert_id", "playbook", "action", "actor", "detail", "sha256", "prev_hash", "hash"}
