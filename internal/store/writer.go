package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writer owns the only write connection. Requests queue on reqs; loop
// runs them in batch transactions and hands each committed batch to
// syncLoop, which fsyncs the WAL and answers: group commit. See doc.go.
type writer struct {
	s    *Store
	conn *sql.Conn
	reqs chan *request

	mu     sync.RWMutex // guards closed against sends
	closed bool
	exited chan struct{}

	// Durability: the connection runs synchronous=NORMAL, so COMMIT only
	// write()s the WAL; the syncer goroutine fsyncs the WAL file and only
	// then answers the batches committed before that fsync began. The
	// writer meanwhile runs the next batch. See doc.go, Durability.
	wal      *os.File
	toSync   chan []*request
	syncIdle chan struct{} // holds a token while the syncer has nothing to do
	syncDone chan struct{}
	broken   atomic.Pointer[error] // set by a failed fsync: the store refuses writes
	syncs    atomic.Int64          // fsyncs of the WAL by the syncer (benchmarks)
	commits  atomic.Int64          // committed batches (the checkpointer reads it)
	fsync    func() error          // tests: replaces wal.Sync; set before the write it is for

	stmts    map[string]*sql.Stmt
	chunkSQL map[chunkKey]string
	head     chainHead
	// openIncidents: see openIncident (incidents.go).
	openIncidents map[[2]string]openIncident
	buf           []byte // canonical encoding scratch
}

type chainHead struct {
	seq  int64
	hash string
	time time.Time
}

type request struct {
	ctx  context.Context
	rows int
	fn   func(*wtx) error
	// acc, instead of fn, is an Accept: the writer merges every Accept of a
	// batch into a few multi-row statements.
	acc *acceptReq
	// urgent (the caller's ctx is Urgent): commit the batch at once and
	// answer at COMMIT, before the fsync. See urgent.go.
	urgent bool
	err    error
	done   chan struct{}
}

// wtx is what a request's function writes with: the writer's connection
// inside the batch transaction.
type wtx struct {
	w     *writer
	now   time.Time
	dirty bool // a statement ran (or failed): an error needs a rollback
}

var bg = context.Background()

func newWriter(s *Store, conn *sql.Conn) (*writer, error) {
	w := &writer{
		s: s, conn: conn,
		reqs:     make(chan *request, s.opts.Queue),
		exited:   make(chan struct{}),
		toSync:   make(chan []*request, 1024),
		syncIdle: make(chan struct{}, 1),
		syncDone: make(chan struct{}),
		stmts:    make(map[string]*sql.Stmt),
		chunkSQL: make(map[chunkKey]string),

		openIncidents: make(map[[2]string]openIncident),
	}
	if err := w.loadHead(); err != nil {
		return nil, err
	}
	w.syncIdle <- struct{}{}
	return w, nil
}

// loadHead continues the chain from the later of journal_head and the last
// row, so that a cut tail stays a visible gap (doc.go).
func (w *writer) loadHead() error {
	var h chainHead
	var ts string
	err := w.conn.QueryRowContext(bg, `SELECT seq, hash, time FROM journal ORDER BY seq DESC LIMIT 1`).Scan(&h.seq, &h.hash, &ts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		h = chainHead{hash: GenesisHash}
	case err != nil:
		return fmt.Errorf("read journal tail: %w", err)
	}
	// A hand-edited time must not keep riposte from starting: verify
	// reports the edit; the time guard just starts from zero.
	h.time, _ = parseTime(ts)
	var rec chainHead
	err = w.conn.QueryRowContext(bg, `SELECT seq, hash, time FROM journal_head WHERE id = 1`).Scan(&rec.seq, &rec.hash, &ts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if h.seq > 0 {
			w.s.log.Warn("journal has entries but no recorded head; run riposte journal verify", "last_seq", h.seq)
		}
	case err != nil:
		return fmt.Errorf("read journal head: %w", err)
	default:
		if rec.seq != h.seq || rec.hash != h.hash {
			w.s.log.Warn("journal head does not match the last entry; run riposte journal verify",
				"head_seq", rec.seq, "last_seq", h.seq)
		}
		if rec.seq > h.seq {
			rec.time, _ = parseTime(ts)
			h = rec
		}
	}
	w.head = h
	return nil
}

// do queues fn and waits until its batch committed (nil) or failed.
func (w *writer) do(ctx context.Context, rows int, fn func(*wtx) error) error {
	return w.send(ctx, &request{ctx: ctx, rows: max(rows, 1), fn: fn})
}

func (w *writer) send(ctx context.Context, r *request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := w.broken.Load(); err != nil {
		return *err
	}
	r.done = make(chan struct{})
	r.urgent = IsUrgent(ctx)
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		// The request may still commit; every write is idempotent.
		return ctx.Err()
	}
}

// close stops taking requests, lets the queued ones commit and waits for
// the loop to end.
func (w *writer) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.reqs)
	}
	w.mu.Unlock()
	<-w.exited
	<-w.syncDone
	for _, st := range w.stmts {
		st.Close()
	}
}

// txn is the open batch transaction.
type txn struct {
	dead  bool       // a replay failed: reqs were answered, nothing to commit
	reqs  []*request // executed in it, in order
	rows  int
	start chainHead // journal head at BEGIN
	t     wtx
}

// loop is the writer. It opens a transaction for the first request, then
// executes requests as they arrive until the syncer is idle (or the batch
// is full, or an urgent request arrived), commits, answers the urgent
// requests, and hands the others to the syncer. So the next batch
// executes while the previous one is being fsync'ed, and under load a batch
// grows for as long as an fsync takes: group commit without a timer.
func (w *writer) loop() {
	defer close(w.exited)
	defer close(w.toSync)
	maxRows := w.s.opts.MaxBatch
	for {
		r, ok := <-w.reqs
		if !ok {
			return
		}
		if err := w.broken.Load(); err != nil {
			answer(w.drain([]*request{r}), *err)
			continue
		}
		idle := false
		if w.s.opts.syncEachCommit {
			<-w.syncIdle // the benchmark's baseline: no two commits share an fsync
			idle = true
		}
		tx, err := w.begin()
		if err != nil {
			answer(w.drain([]*request{r}), err)
			if idle {
				w.syncIdle <- struct{}{}
			}
			continue
		}
		// While the syncer is busy, requests wait until mergeRows of them
		// are queued and run together (merged Accepts cost a fraction of
		// single ones); when it is idle, whatever waits runs and commits.
		// An urgent request ends the wait: the batch commits with it.
		waiting := w.drain([]*request{r})
		urgent := anyUrgent(waiting)
		open := true
		for !tx.dead && open && !idle && !urgent && tx.rows+rows(waiting) < maxRows {
			if rows(waiting) >= mergeRows {
				w.exec(tx, waiting)
				waiting = nil
			}
			select {
			case r, ok := <-w.reqs:
				if !ok {
					open = false
					break
				}
				n := len(waiting)
				waiting = w.drain(append(waiting, r))
				urgent = anyUrgent(waiting[n:])
			case <-w.syncIdle:
				idle = true
			}
		}
		if len(waiting) > 0 {
			w.exec(tx, w.drain(waiting))
		}
		switch err := w.commit(tx); {
		case err != nil || tx.dead:
			answer(tx.reqs, err)
			if idle {
				w.syncIdle <- struct{}{} // the syncer still has nothing to do
			}
		default:
			w.commits.Add(1)
			// The syncer first, then the urgent answers: the goroutine
			// readied last runs next on this thread, and the syncer would
			// otherwise take that place (and the thread, into fsync) from
			// the caller who is waiting to act (~0.3 ms measured).
			later, urgent := splitUrgent(tx.reqs)
			w.toSync <- later // the syncer fsyncs even for none
			w.answerUrgent(urgent)
		}
		if !open {
			return
		}
	}
}

// splitUrgent splits the requests of a committed batch into those the
// syncer answers after its fsync and the urgent ones, answered at COMMIT.
func splitUrgent(reqs []*request) (later, urgent []*request) {
	if !anyUrgent(reqs) {
		return reqs, nil
	}
	later = make([]*request, 0, len(reqs))
	for _, r := range reqs {
		if r.urgent {
			urgent = append(urgent, r)
		} else {
			later = append(later, r)
		}
	}
	return later, urgent
}

// answerUrgent answers the urgent requests of a committed batch, with the
// store's error if an fsync already failed.
func (w *writer) answerUrgent(urgent []*request) {
	if len(urgent) == 0 {
		return
	}
	var err error
	if p := w.broken.Load(); p != nil {
		err = *p
	}
	answer(urgent, err)
}

func anyUrgent(reqs []*request) bool {
	for _, r := range reqs {
		if r.urgent {
			return true
		}
	}
	return false
}

// mergeRows is how many rows of requests the writer gathers before it runs
// them while a sync is in flight.
const mergeRows = 64

func rows(reqs []*request) int {
	n := 0
	for _, r := range reqs {
		n += r.rows
	}
	return n
}

// drain adds to group the requests already queued, up to MaxBatch rows.
func (w *writer) drain(group []*request) []*request {
	rows := rows(group)
	for rows < w.s.opts.MaxBatch {
		select {
		case r, ok := <-w.reqs:
			if !ok {
				return group
			}
			group = append(group, r)
			rows += r.rows
		default:
			return group
		}
	}
	return group
}

func answer(reqs []*request, err error) {
	for _, r := range reqs {
		if r.err == nil {
			r.err = err
		}
		close(r.done)
	}
}

func (w *writer) begin() (*txn, error) {
	if _, err := w.conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &txn{start: w.head, t: wtx{w: w}}, nil
}

// exec runs a group of requests in tx: the group's Accepts merged, then
// the others in order. A request that fails after writing makes the whole
// transaction roll back and replay with a savepoint per request, so that
// only the failing request is undone.
func (w *writer) exec(tx *txn, group []*request) {
	if tx.dead {
		answer(group, errors.New("write batch aborted after its transaction failed; retry"))
		return
	}
	live := group[:0:0]
	for _, r := range group {
		if err := r.ctx.Err(); err != nil {
			r.err = err // nobody waits for it
		} else {
			live = append(live, r)
		}
		tx.reqs = append(tx.reqs, r)
		tx.rows += r.rows
	}
	t := &tx.t
	var accs []*request
	for _, r := range live {
		if r.acc != nil {
			accs = append(accs, r)
		}
	}
	if len(accs) > 0 {
		t.dirty, t.now = false, w.s.now()
		if err := t.acceptAll(accs); err != nil {
			w.replay(tx)
			return
		}
	}
	for _, r := range live {
		if r.acc != nil {
			continue
		}
		t.dirty, t.now = false, w.s.now()
		r.err = r.fn(t)
		if r.err != nil && t.dirty {
			w.replay(tx)
			return
		}
	}
}

// replay rolls tx back and runs every request in it again, each in a
// savepoint. A request that fails keeps its error; the others succeed as
// before (they see the same state in the same order).
func (w *writer) replay(tx *txn) {
	w.rollback()
	w.head = tx.start
	fail := func(err error) {
		w.rollback()
		if lerr := w.loadHead(); lerr != nil {
			err = errors.Join(err, lerr)
		}
		for _, r := range tx.reqs {
			r.err = err
		}
		answer(tx.reqs, err)
		tx.reqs, tx.dead = nil, true
	}
	if _, err := w.conn.ExecContext(bg, "BEGIN IMMEDIATE"); err != nil {
		fail(fmt.Errorf("begin: %w", err))
		return
	}
	t := &tx.t
	for _, r := range tx.reqs {
		if r.ctx.Err() != nil && r.err != nil {
			continue
		}
		if _, err := w.conn.ExecContext(bg, "SAVEPOINT req"); err != nil {
			fail(fmt.Errorf("savepoint: %w", err))
			return
		}
		before := w.head
		t.dirty, t.now = false, w.s.now()
		if r.acc != nil {
			r.err = t.acceptAll([]*request{r})
		} else {
			r.err = r.fn(t)
		}
		if r.err != nil {
			if _, err := w.conn.ExecContext(bg, "ROLLBACK TO req"); err != nil {
				fail(fmt.Errorf("roll back a failed request (%v): %w", r.err, err))
				return
			}
			w.head = before
			clear(w.openIncidents)
		}
		if _, err := w.conn.ExecContext(bg, "RELEASE req"); err != nil {
			fail(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
}

// rollback rolls the open transaction back, and with it what the writer
// remembered of it (openIncidents: what it read or opened may be gone).
func (w *writer) rollback() {
	_, _ = w.conn.ExecContext(bg, "ROLLBACK")
	clear(w.openIncidents)
}

// commit records the journal head and commits tx (without fsync: the
// syncer does that).
func (w *writer) commit(tx *txn) error {
	if tx.dead {
		return nil
	}
	fail := func(err error) error {
		w.rollback()
		if lerr := w.loadHead(); lerr != nil {
			err = errors.Join(err, lerr)
		}
		return err
	}
	if w.head != tx.start {
		if _, err := w.stmt(`INSERT INTO journal_head (id, seq, hash, time) VALUES (1, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, time = excluded.time`).
			ExecContext(bg, w.head.seq, w.head.hash, FormatTime(w.head.time)); err != nil {
			return fail(fmt.Errorf("record journal head: %w", err))
		}
	}
	if _, err := w.conn.ExecContext(bg, "COMMIT"); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// syncLoop makes committed batches durable: one fsync of the WAL for every
// batch committed before it started, then the answers. It tells the writer
// when it is idle.
func (w *writer) syncLoop() {
	defer close(w.syncDone)
	var pending []*request
	for batch := range w.toSync {
		pending = append(pending[:0], batch...)
	drain:
		for {
			select {
			case b, ok := <-w.toSync:
				if !ok {
					break drain
				}
				pending = append(pending, b...)
			default:
				break drain
			}
		}
		var err error
		if p := w.broken.Load(); p != nil {
			err = *p
		} else if err = w.syncWAL(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: nothing committed since the last good fsync can be
			// trusted to be on disk. Refuse every write until a restart
			// (which recovers from the WAL that did reach the disk).
			err = fmt.Errorf("sync write-ahead log: %w", err)
			w.broken.Store(&err)
			w.s.log.Error("store broken: fsync failed; restart riposte", "err", err)
		}
		answer(pending, err)
		clear(pending)
		select {
		case w.syncIdle <- struct{}{}:
		default:
		}
	}
}

func (w *writer) syncWAL() error {
	w.syncs.Add(1)
	if w.fsync != nil {
		return w.fsync()
	}
	return w.wal.Sync()
}

func (w *writer) stmt(query string) *sql.Stmt {
	if st, ok := w.stmts[query]; ok {
		return st
	}
	st, err := w.conn.PrepareContext(bg, query)
	if err != nil {
		// Queries are constants of this package: a failure is a bug, and
		// exec reports it through a nil statement.
		w.s.log.Error("prepare statement", "err", err, "query", query)
		return nil
	}
	w.stmts[query] = st
	return st
}

func (t *wtx) exec(query string, args ...any) (sql.Result, error) {
	t.dirty = true
	st := t.w.stmt(query)
	if st == nil {
		_, err := t.w.conn.PrepareContext(bg, query)
		return nil, fmt.Errorf("prepare: %w", err)
	}
	return st.ExecContext(bg, args...)
}

// affected runs a statement and returns how many rows it changed. A
// statement that changed nothing leaves the request clean (an error after
// it needs no rollback).
func (t *wtx) affected(query string, args ...any) (int64, error) {
	was := t.dirty
	res, err := t.exec(query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err == nil && n == 0 {
		t.dirty = was
	}
	return n, err
}

// queryRow runs a query; a scan error other than sql.ErrNoRows marks the
// request dirty.
func (t *wtx) queryRow(query string, args ...any) *row {
	st := t.w.stmt(query)
	if st == nil {
		_, err := t.w.conn.PrepareContext(bg, query)
		t.dirty = true
		return &row{err: fmt.Errorf("prepare: %w", err), t: t}
	}
	return &row{r: st.QueryRowContext(bg, args...), t: t}
}

type row struct {
	r   *sql.Row
	err error
	t   *wtx
}

func (r *row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	err := r.r.Scan(dest...)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		r.t.dirty = true
	}
	return err
}

func (t *wtx) query(query string, args ...any) (*sql.Rows, error) {
	st := t.w.stmt(query)
	if st == nil {
		t.dirty = true
		_, err := t.w.conn.PrepareContext(bg, query)
		return nil, fmt.Errorf("prepare: %w", err)
	}
	rows, err := st.QueryContext(bg, args...)
	if err != nil {
		t.dirty = true
	}
	return rows, err
}

const (
	insertJournalHead  = `INSERT INTO journal (seq, time, type, alert_id, playbook, action, actor, detail, sha256, prev_hash, hash, via_inbox) VALUES `
	journalPlaceholder = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	journalArgs        = 12
)

// append numbers, chains, hashes and inserts entries. out, when not nil,
// receives the entries as stored.
func (t *wtx) append(entries []prepared, out []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	w := t.w
	args := make([]any, 0, journalArgs*len(entries))
	h := w.head
	for i := range entries {
		p := &entries[i]
		at := w.s.now()
		if at.Before(h.time) {
			at = h.time // keep time non-decreasing along seq
		}
		r := Row{
			Seq: h.seq + 1, Time: FormatTime(at), Type: string(p.Type), AlertID: p.AlertID,
			Playbook: p.Playbook, Action: p.Action, Actor: p.Actor, Detail: p.detail,
			SHA256: p.SHA256, PrevHash: h.hash,
		}
		w.buf = r.Canonical(w.buf[:0])
		sum := sha256.Sum256(w.buf)
		r.Hash = hex.EncodeToString(sum[:])
		args = append(args, r.Seq, r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash, r.Hash, p.viaInbox)
		h = chainHead{seq: r.Seq, hash: r.Hash, time: at}
		if out != nil {
			e := p.Entry
			e.Seq, e.Time, e.PrevHash, e.Hash = r.Seq, at, r.PrevHash, r.Hash
			e.rawDetail = []byte(p.detail)
			out[i] = e
		}
	}
	if err := t.execRows(insertJournalHead, journalPlaceholder, "", journalArgs, args); err != nil {
		return fmt.Errorf("append journal entries: %w", err)
	}
	w.head = h
	return nil
}

// maxChunk bounds the rows of one multi-row statement (SQLite allows 32766
// parameters).
const maxChunk = 256

// exactChunk: up to this many rows get a statement of their exact size;
// more go in power-of-two chunks. So a statement shape is prepared once
// and reused, and there are few shapes.
const exactChunk = 16

// chunkRows is how many of rows the next statement takes.
func chunkRows(rows int) int {
	if rows <= exactChunk {
		return rows
	}
	n := maxChunk
	for n > rows {
		n /= 2
	}
	return n
}

// execRows runs head + "ph, ph, ..." + tail for len(args)/perRow rows, in
// chunks of powers of two so that few statement shapes get prepared.
func (t *wtx) execRows(head, ph, tail string, perRow int, args []any) error {
	rows := len(args) / perRow
	for rows > 0 {
		n := chunkRows(rows)
		key := chunkKey{head, n}
		q, ok := t.w.chunkSQL[key]
		if !ok {
			var b strings.Builder
			b.WriteString(head)
			for i := 0; i < n; i++ {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(ph)
			}
			b.WriteString(tail)
			q = b.String()
			t.w.chunkSQL[key] = q
		}
		if _, err := t.exec(q, args[:n*perRow]...); err != nil {
			return err
		}
		args = args[n*perRow:]
		rows -= n
	}
	return nil
}

type chunkKey struct {
	head string
	n    int
}

// write runs fn through the writer, or fails on a read-only store.
func (s *Store) write(ctx context.Context, rows int, fn func(*wtx) error) error {
	if s.w == nil {
		return ErrReadOnly
	}
	return s.w.do(ctx, rows, fn)
}
