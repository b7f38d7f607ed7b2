package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// notFound turns sql.ErrNoRows into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	return err
}

// newID returns prefix-YYYYMMDD-HHMMSS-xxxxxxxxxx: readable, sortable by
// time, and 40 random bits within one second (a flood opening thousands of
// incidents a second still collides with odds below one in a million).
func newID(prefix string, at time.Time) string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "-" + at.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// Incident finds or opens the incident of (containerID, rule); see Incidents.
func (s *Store) Incident(ctx context.Context, containerID, rule string, at time.Time) (string, bool, error) {
	refs, err := s.IncidentsFor(ctx, []IncidentQuery{{ContainerID: containerID, Rule: rule, At: at}})
	if err != nil {
		return "", false, err
	}
	return refs[0].ID, refs[0].Created, nil
}

// IncidentsFor finds or opens the incidents of several alerts, in order,
// in one transaction; see Incidents.
func (s *Store) IncidentsFor(ctx context.Context, qs []IncidentQuery) ([]IncidentRef, error) {
	for i := range qs {
		if err := errors.Join(checkText(qs[i].ContainerID), checkText(qs[i].Rule)); err != nil {
			return nil, fmt.Errorf("find incident: %w", err)
		}
		if qs[i].At.IsZero() {
			qs[i].At = s.now()
		}
	}
	refs := make([]IncidentRef, len(qs))
	err := s.write(ctx, 2*len(qs), func(t *wtx) error {
		for i, q := range qs {
			id, created, err := t.incident(q.ContainerID, q.Rule, q.At, q.ReceivedAt)
			if err != nil {
				return fmt.Errorf("find incident of %s/%s: %w", q.ContainerID, q.Rule, err)
			}
			refs[i] = IncidentRef{ID: id, Created: created}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refs, nil
}

// groupTime is the time an alert is grouped by: the sender's, unless it
// is more than skew from the receive time (when known).
func groupTime(sent, received time.Time, skew time.Duration) (time.Time, bool) {
	if received.IsZero() {
		return sent, false
	}
	if d := sent.Sub(received); sent.IsZero() || d > skew || d < -skew {
		return received, true
	}
	return sent, false
}

// incident is one find-or-open inside a write transaction, by the alert's
// time sent (and when it was received, if known).
func (t *wtx) incident(containerID, rule string, sent, received time.Time) (string, bool, error) {
	ids, opened, err := t.incidents([]incidentQuery{{container: containerID, rule: rule, sent: sent, received: received}})
	if err != nil {
		return "", false, err
	}
	if opened[0] == nil {
		return ids[0], false, nil
	}
	return ids[0], true, t.append([]prepared{*opened[0]}, nil)
}

type incidentQuery struct {
	container, rule string
	sent, received  time.Time
}

// incidents finds or opens the incidents of several alerts, in order,
// inside a write transaction: one lookup per (container, rule) and one
// update per incident, however many of the alerts share it. An alert that
// opened an incident gets its incident.opened entry in opened, for the
// caller to append (not appended here, so that it can follow the alert's
// alert.received).
func (t *wtx) incidents(qs []incidentQuery) (ids []string, opened []*prepared, err error) {
	window := t.w.s.opts.IncidentWindow
	type current struct {
		id    string
		last  time.Time
		added int // alerts grouped into it here, beyond the one that opened it
	}
	memo := make(map[[2]string]*current)
	var touched []*current
	ids, opened = make([]string, len(qs)), make([]*prepared, len(qs))
	for k, q := range qs {
		at, skewed := groupTime(q.sent, q.received, t.w.s.opts.ClockSkew)
		key := [2]string{q.container, q.rule}
		c, looked := memo[key]
		if ce, ok := t.w.openIncidents[key]; ok && !looked {
			c, looked = &current{id: ce.id, last: ce.last}, true
			memo[key] = c
			touched = append(touched, c)
		}
		if !looked {
			var id, lastSeen string
			err := t.queryRow(`SELECT id, last_seen FROM incidents WHERE container_id = ? AND rule = ? AND state = 'open'
		ORDER BY last_seen DESC LIMIT 1`, q.container, q.rule).Scan(&id, &lastSeen)
			switch {
			case err == nil:
				ls, err := parseTime(lastSeen)
				if err != nil {
					t.dirty = true
					return nil, nil, err
				}
				c = &current{id: id, last: ls}
				touched = append(touched, c)
			case !errors.Is(err, sql.ErrNoRows):
				return nil, nil, err
			}
			memo[key] = c
		}
		if c != nil && !at.After(c.last.Add(window)) {
			c.added++
			if at.After(c.last) {
				c.last = at
			}
			ids[k] = c.id
			continue
		}
		id := newID("inc", at)
		atS := FormatTime(at)
		if _, err := t.exec(`INSERT INTO incidents (id, container_id, rule, opened_at, last_seen) VALUES (?, ?, ?, ?, ?)`,
			id, q.container, q.rule, atS, atS); err != nil {
			return nil, nil, err
		}
		e, err := incidentOpenedEntry(id, q.container, q.rule, q.sent, q.received, skewed)
		if err != nil {
			t.dirty = true
			return nil, nil, err
		}
		ids[k], opened[k] = id, &e
		c = &current{id: id, last: at}
		memo[key] = c
		touched = append(touched, c)
	}
	var joined []any // id, last seen, alerts added: one row per incident
	for _, c := range touched {
		if c.added > 0 {
			joined = append(joined, c.id, FormatTime(c.last), c.added)
		}
	}
	if err := t.execRows(updateIncidentsHead, incidentPlaceholder, updateIncidentsTail, 3, joined); err != nil {
		return nil, nil, err
	}
	if len(t.w.openIncidents) > maxOpenIncidents {
		clear(t.w.openIncidents)
	}
	for key, c := range memo {
		if c != nil {
			t.w.openIncidents[key] = openIncident{id: c.id, last: c.last}
		}
	}
	return ids, opened, nil
}

// incidentOpenedEntry is the incident.opened entry of incident id, opened
// for an alert of container and rule sent at sent and received at
// received; skewed: it was grouped by received (GroupTime).
func incidentOpenedEntry(id, container, rule string, sent, received time.Time, skewed bool) (prepared, error) {
	detail := map[string]any{"incident": id, "container_id": container, "rule": rule}
	if skewed {
		// Both times, and which one grouped: the sender's clock is off.
		detail["alert_time"] = FormatTime(sent)
		detail["received_at"] = FormatTime(received)
		detail["grouped_by"] = "received_at: alert time outside the clock skew tolerance"
	}
	return prepareEntry(Entry{Type: IncidentOpened, Actor: storeActor, Detail: detail})
}

// The incidents joined by a batch's alerts are updated in one statement
// (chunked): a statement per incident cost more than the update itself. The
// ids are distinct (one row per incident; UPDATE FROM would apply only one
// of two rows with the same id).
const (
	updateIncidentsHead = `UPDATE incidents SET last_seen = max(incidents.last_seen, v.column2), alerts = incidents.alerts + v.column3 FROM (VALUES `
	incidentPlaceholder = `(?, ?, ?)`
	updateIncidentsTail = `) AS v WHERE incidents.id = v.column1`
)

// openIncident is what the writer remembers of an open incident: the
// store's only writer knows the newest open incident of a container and
// rule without reading it again. Forgotten when an incident changes state
// and when a transaction rolls back (what it remembered may not have
// committed).
type openIncident struct {
	id   string
	last time.Time
}

// maxOpenIncidents bounds the writer's memory of open incidents.
const maxOpenIncidents = 4096

const incidentColumns = `id, container_id, rule, state, opened_at, last_seen, alerts, released_at`

func scanIncident(sc interface{ Scan(...any) error }) (IncidentInfo, error) {
	var in IncidentInfo
	var opened, last, released string
	if err := sc.Scan(&in.ID, &in.ContainerID, &in.Rule, &in.State, &opened, &last, &in.Alerts, &released); err != nil {
		return in, err
	}
	var err error
	if in.OpenedAt, err = parseTime(opened); err != nil {
		return in, err
	}
	if in.LastSeen, err = parseTime(last); err != nil {
		return in, err
	}
	in.ReleasedAt, err = parseTime(released)
	return in, err
}

// GetIncident returns one incident, or ErrNotFound.
func (s *Store) GetIncident(ctx context.Context, id string) (IncidentInfo, error) {
	in, err := scanIncident(s.rdb.QueryRowContext(ctx, `SELECT `+incidentColumns+` FROM incidents WHERE id = ?`, id))
	if err != nil {
		return in, fmt.Errorf("get incident %s: %w", id, notFound(err))
	}
	return in, nil
}

// ListIncidents returns incidents, newest first.
func (s *Store) ListIncidents(ctx context.Context, f IncidentFilter) ([]IncidentInfo, error) {
	var b strings.Builder
	var args []any
	b.WriteString(`SELECT ` + incidentColumns + ` FROM incidents`)
	if f.State != "" {
		b.WriteString(` WHERE state = ?`)
		args = append(args, string(f.State))
	}
	b.WriteString(` ORDER BY opened_at DESC, id DESC`)
	if f.Limit > 0 {
		fmt.Fprintf(&b, ` LIMIT %d`, f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []IncidentInfo
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

// SetIncidentState opens or releases an incident; see Incidents.
func (s *Store) SetIncidentState(ctx context.Context, id string, state IncidentState, entries ...Entry) (bool, error) {
	if state != IncidentStateOpen && state != IncidentStateReleased {
		return false, fmt.Errorf("set incident %s state: unknown state %q", id, state)
	}
	prep, err := prepareEntries(entries)
	if err != nil {
		return false, fmt.Errorf("set incident %s state: %w", id, err)
	}
	var changed bool
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		changed = false
		released := ""
		if state == IncidentStateReleased {
			released = FormatTime(t.now)
		}
		n, err := t.affected(`UPDATE incidents SET state = ?, released_at = ? WHERE id = ? AND state <> ?`,
			string(state), released, id, string(state))
		if err != nil {
			return err
		}
		if n == 0 {
			var one int
			return notFound(t.queryRow(`SELECT 1 FROM incidents WHERE id = ?`, id).Scan(&one))
		}
		changed = true
		clear(t.w.openIncidents)
		return t.append(prep, nil)
	})
	if err != nil {
		return false, fmt.Errorf("set incident %s state: %w", id, err)
	}
	return changed, nil
}
