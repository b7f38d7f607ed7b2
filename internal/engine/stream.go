package engine

import (
	"context"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// Streamer sends alerts and journal entries to logging pipelines and SIEMs
// (syslog, JSON-lines files, programs) through the outbox: it turns them
// into outbox messages (none when no output wants them) and delivers one.
type Streamer interface {
	AlertMessages(a *alert.Alert, incident string) ([]store.Message, error)
	EntryMessages(e store.Entry) ([]store.Message, error)
	// Kind is the outbox kind of stream messages.
	Kind() string
	// Deliver sends one message; detail describes the delivery (output,
	// record, and for programs the exit status and stderr) and marks the
	// entries that record it so that they are not streamed again.
	Deliver(ctx context.Context, m store.Message) (detail map[string]any, err error)
	// Journal reports whether a successful delivery is worth a journal
	// entry (program runs: their exit status and stderr).
	Journal(detail map[string]any) bool
}

// streamCursor is where the journal follower keeps the last seq it queued.
const (
	streamNS        = "stream"
	streamCursorKey = "journal.cursor"
)

func (e *Engine) streamAlert(ctx context.Context, a *alert.Alert, incident string) {
	if e.deps.Stream == nil {
		return
	}
	msgs, err := e.deps.Stream.AlertMessages(a, incident)
	if err != nil {
		e.log.Error("stream alert", "alert", a.ID, "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	if _, err := e.deps.Store.Enqueue(ctx, msgs); err != nil {
		e.log.Error("queue stream records", "alert", a.ID, "err", err)
		return
	}
	e.notifyOutbox()
}

// followJournal queues every new journal entry for the stream outputs that
// want it, remembering how far it got in the store, so that a restart
// neither skips nor (outbox keys are idempotent) repeats entries.
func (e *Engine) followJournal(ctx, work context.Context) {
	cursor, err := e.streamCursor(work)
	if err != nil {
		e.log.Error("stream journal: read cursor", "err", err)
		return
	}
	t := time.NewTicker(e.cfg.Poll)
	defer t.Stop()
	for {
		next, n, err := e.streamPage(work, cursor)
		if err != nil {
			e.log.Error("stream journal", "after", cursor, "err", err)
		} else if next != cursor {
			cursor = next
			if err := e.deps.Store.Put(work, streamNS, streamCursorKey, []byte(strconv.FormatInt(cursor, 10))); err != nil {
				e.log.Error("stream journal: save cursor", "err", err)
			}
		}
		if n == streamPageSize {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const streamPageSize = 512

func (e *Engine) streamCursor(ctx context.Context) (int64, error) {
	v, ok, err := e.deps.Store.Get(ctx, streamNS, streamCursorKey)
	if err != nil || !ok {
		return 0, err
	}
	return strconv.ParseInt(string(v), 10, 64)
}

// initStreamCursor records where streaming starts the first time outputs
// are configured: at the end of the journal as it is now (the history is
// not replayed into a new SIEM). It runs before the engine takes alerts.
func (e *Engine) initStreamCursor(ctx context.Context) error {
	if _, ok, err := e.deps.Store.Get(ctx, streamNS, streamCursorKey); err != nil || ok {
		return err
	}
	h, err := e.deps.Store.Head(ctx)
	if err != nil {
		return err
	}
	return e.deps.Store.Put(ctx, streamNS, streamCursorKey, []byte(strconv.FormatInt(h.Seq, 10)))
}

func (e *Engine) streamPage(ctx context.Context, after int64) (next int64, n int, err error) {
	entries, err := e.deps.Store.Entries(ctx, store.Filter{AfterSeq: after, Limit: streamPageSize})
	if err != nil || len(entries) == 0 {
		return after, 0, err
	}
	var msgs []store.Message
	for _, en := range entries {
		m, err := e.deps.Stream.EntryMessages(en)
		if err != nil {
			e.log.Warn("stream journal entry", "seq", en.Seq, "err", err)
			continue
		}
		msgs = append(msgs, m...)
	}
	if len(msgs) > 0 {
		if _, err := e.deps.Store.Enqueue(ctx, msgs); err != nil {
			return after, 0, err
		}
		e.notifyOutbox()
	}
	return entries[len(entries)-1].Seq, len(entries), nil
}
