package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/riposte-sec/riposte/internal/store"
)

// Incident finds or opens the incident of (containerID, rule); see
// store.Incidents.
func (s *Store) Incident(ctx context.Context, containerID, rule string, at time.Time) (string, bool, error) {
	refs, err := s.IncidentsFor(ctx, []store.IncidentQuery{{ContainerID: containerID, Rule: rule, At: at}})
	if err != nil {
		return "", false, err
	}
	return refs[0].ID, refs[0].Created, nil
}

// IncidentsFor finds or opens the incidents of several alerts, in order,
// in one transaction (see incidents). The transaction holds the journal
// head's lock, so two replicas grouping alerts of one container and rule
// at once open one incident, not two.
func (s *Store) IncidentsFor(ctx context.Context, qs []store.IncidentQuery) ([]store.IncidentRef, error) {
	iq := make([]incidentQuery, len(qs))
	for i, q := range qs {
		if err := errors.Join(store.CheckText(q.ContainerID), store.CheckText(q.Rule)); err != nil {
			return nil, fmt.Errorf("find incident: %w", err)
		}
		if q.At.IsZero() {
			q.At = s.now()
		}
		iq[i] = incidentQuery{container: q.ContainerID, rule: q.Rule, sent: q.At, received: q.ReceivedAt}
	}
	refs := make([]store.IncidentRef, len(qs))
	err := s.write(ctx, true, func(t *wtx) error {
		ids, opened, err := t.incidents(iq)
		if err != nil {
			return fmt.Errorf("find incidents: %w", err)
		}
		var entries []store.PreparedEntry
		for i := range ids {
			refs[i] = store.IncidentRef{ID: ids[i], Created: opened[i] != nil}
			if opened[i] != nil {
				entries = append(entries, *opened[i])
			}
		}
		return t.append(entries, nil)
	})
	if err != nil {
		return nil, err
	}
	return refs, nil
}

type incidentQuery struct {
	container, rule string
	sent, received  time.Time
}

type incidentKey struct{ container, rule string }

// openIncident is the open incident of a container and rule as a chain
// transaction finds and changes it.
type openIncident struct {
	id    string
	last  time.Time
	added int // alerts grouped into it here, beyond the one that opened it
}

// incidentLookup finds the open incident of each (container, rule) of two
// arrays, through incidents_open; scanIncidents reads its rows.
const incidentLookup = `SELECT u.c, u.r, i.id, i.last_seen FROM unnest($1::text[], $2::text[]) AS u(c, r)
	CROSS JOIN LATERAL (SELECT id, last_seen FROM incidents WHERE container_id = u.c AND rule = u.r AND state = 'open'
	ORDER BY last_seen DESC LIMIT 1) i`

// incidentKeys are the distinct (container, rule) of qs, as incidentLookup's
// arguments.
func incidentKeys(qs []incidentQuery) (containers, rules []string) {
	seen := make(map[incidentKey]bool, len(qs))
	for _, q := range qs {
		k := incidentKey{q.container, q.rule}
		if !seen[k] {
			seen[k] = true
			containers, rules = append(containers, q.container), append(rules, q.rule)
		}
	}
	return containers, rules
}

func scanIncidents(rows pgx.Rows) (map[incidentKey]*openIncident, error) {
	defer rows.Close()
	found := make(map[incidentKey]*openIncident)
	for rows.Next() {
		var k incidentKey
		var id, lastSeen string
		if err := rows.Scan(&k.container, &k.rule, &id, &lastSeen); err != nil {
			return nil, err
		}
		ls, err := store.ParseTime(lastSeen)
		if err != nil {
			return nil, fmt.Errorf("incident %s: last_seen: %w", id, err)
		}
		found[k] = &openIncident{id: id, last: ls}
	}
	return found, rows.Err()
}

// statement is one SQL statement with its arguments, to run or to queue in
// a batch.
type statement struct {
	sql  string
	args []any
}

// incidents finds or opens the incidents of several alerts, in order,
// inside a chain transaction (whose lock on the journal head serialises
// find-or-open across replicas): one lookup for all of them, then
// groupIncidents' writes.
func (t *wtx) incidents(qs []incidentQuery) (ids []string, opened []*store.PreparedEntry, err error) {
	if len(qs) == 0 {
		return nil, nil, nil
	}
	cs, rs := incidentKeys(qs)
	rows, err := t.tx.Query(t.ctx, incidentLookup, cs, rs)
	if err != nil {
		return nil, nil, err
	}
	found, err := scanIncidents(rows)
	if err != nil {
		return nil, nil, err
	}
	ids, opened, writes, err := t.groupIncidents(qs, found)
	if err != nil {
		return nil, nil, err
	}
	for _, w := range writes {
		if _, err := t.exec(w.sql, w.args...); err != nil {
			return nil, nil, err
		}
	}
	return ids, opened, nil
}

// groupIncidents decides, in order, which incident each alert of qs joins
// or opens, given the open incidents found (incidentLookup's, for a
// superset of qs's keys at most; it is changed). It returns the writes
// that record it: one insert of the incidents opened and one update of
// those joined, however many alerts share one. An alert that opened an
// incident gets its incident.opened entry in opened, for the caller to
// append where it belongs (right after the alert's alert.received in an
// accept).
func (t *wtx) groupIncidents(qs []incidentQuery, found map[incidentKey]*openIncident) (ids []string, opened []*store.PreparedEntry, writes []statement, err error) {
	window := t.s.opts.IncidentWindow
	var touched []*openIncident
	for _, c := range found {
		touched = append(touched, c)
	}
	var newIDs, newC, newR, newAt []string
	ids, opened = make([]string, len(qs)), make([]*store.PreparedEntry, len(qs))
	for i, q := range qs {
		at, skewed := store.GroupTime(q.sent, q.received, t.s.opts.ClockSkew)
		k := incidentKey{q.container, q.rule}
		if c := found[k]; c != nil && !at.After(c.last.Add(window)) {
			c.added++
			if at.After(c.last) {
				c.last = at
			}
			ids[i] = c.id
			continue
		}
		id := store.NewID("inc", at)
		newIDs, newC, newR, newAt = append(newIDs, id), append(newC, q.container), append(newR, q.rule), append(newAt, store.FormatTime(at))
		e, err := store.IncidentOpenedEntry(id, q.container, q.rule, q.sent, q.received, skewed)
		if err != nil {
			return nil, nil, nil, err
		}
		ids[i], opened[i] = id, &e
		c := &openIncident{id: id, last: at}
		found[k] = c
		touched = append(touched, c)
	}
	if len(newIDs) > 0 {
		writes = append(writes, statement{`INSERT INTO incidents (id, container_id, rule, opened_at, last_seen)
			SELECT id, c, r, at, at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS u(id, c, r, at)`,
			[]any{newIDs, newC, newR, newAt}})
	}
	var upID, upLast []string
	var upAdded []int32
	for _, c := range touched {
		if c.added > 0 {
			upID, upLast, upAdded = append(upID, c.id), append(upLast, store.FormatTime(c.last)), append(upAdded, int32(c.added))
		}
	}
	if len(upID) > 0 {
		// After the insert: an incident opened here may have been joined.
		writes = append(writes, statement{`UPDATE incidents i SET last_seen = GREATEST(i.last_seen, u.last), alerts = i.alerts + u.added
			FROM unnest($1::text[], $2::text[], $3::int[]) AS u(id, last, added) WHERE i.id = u.id`,
			[]any{upID, upLast, upAdded}})
	}
	return ids, opened, writes, nil
}

const incidentColumns = `id, container_id, rule, state, opened_at, last_seen, alerts, released_at`

func scanIncident(sc pgx.Row) (store.IncidentInfo, error) {
	var in store.IncidentInfo
	var opened, last, released string
	if err := sc.Scan(&in.ID, &in.ContainerID, &in.Rule, &in.State, &opened, &last, &in.Alerts, &released); err != nil {
		return in, err
	}
	var err error
	if in.OpenedAt, err = store.ParseTime(opened); err != nil {
		return in, err
	}
	if in.LastSeen, err = store.ParseTime(last); err != nil {
		return in, err
	}
	in.ReleasedAt, err = store.ParseTime(released)
	return in, err
}

// GetIncident returns one incident, or store.ErrNotFound.
func (s *Store) GetIncident(ctx context.Context, id string) (store.IncidentInfo, error) {
	in, err := scanIncident(s.pool.QueryRow(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = $1`, id))
	if err != nil {
		return in, fmt.Errorf("get incident %s: %w", id, notFound(err))
	}
	return in, nil
}

// ListIncidents returns incidents, newest first.
func (s *Store) ListIncidents(ctx context.Context, f store.IncidentFilter) ([]store.IncidentInfo, error) {
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT ` + incidentColumns + ` FROM incidents`)
	if f.State != "" {
		b.WriteString(` WHERE state = $1`)
		args = append(args, string(f.State))
	}
	b.WriteString(` ORDER BY opened_at DESC, id DESC`)
	if f.Limit > 0 {
		fmt.Fprintf(&b, ` LIMIT %d`, f.Limit)
	}
	rows, err := s.pool.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []store.IncidentInfo
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	return out, nil
}

// SetIncidentState opens or releases an incident; see store.Incidents.
func (s *Store) SetIncidentState(ctx context.Context, id string, state store.IncidentState, entries ...store.Entry) (bool, error) {
	if state != store.IncidentStateOpen && state != store.IncidentStateReleased {
		return false, fmt.Errorf("set incident %s state: unknown state %q", id, state)
	}
	prep, err := store.PrepareEntries(entries)
	if err != nil {
		return false, fmt.Errorf("set incident %s state: %w", id, err)
	}
	var changed bool
	err = s.write(ctx, true, func(t *wtx) error {
		changed = false
		released := ""
		if state == store.IncidentStateReleased {
			released = store.FormatTime(t.now)
		}
		n, err := t.exec(`UPDATE incidents SET state = $1, released_at = $2 WHERE id = $3 AND state <> $1`, string(state), released, id)
		if err != nil {
			return err
		}
		if n == 0 {
			return t.exists(`SELECT 1 FROM incidents WHERE id = $1`, id)
		}
		changed = true
		return t.append(prep, nil)
	})
	if err != nil {
		return false, fmt.Errorf("set incident %s state: %w", id, err)
	}
	return changed, nil
}
