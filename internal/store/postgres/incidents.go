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
// in one transaction. The transaction holds the journal head's lock, so
// two replicas grouping alerts of one container and rule at once open one
// incident, not two.
func (s *Store) IncidentsFor(ctx context.Context, qs []store.IncidentQuery) ([]store.IncidentRef, error) {
	for i := range qs {
		if err := errors.Join(store.CheckText(qs[i].ContainerID), store.CheckText(qs[i].Rule)); err != nil {
			return nil, fmt.Errorf("find incident: %w", err)
		}
		if qs[i].At.IsZero() {
			qs[i].At = s.now()
		}
	}
	refs := make([]store.IncidentRef, len(qs))
	err := s.write(ctx, true, func(t *wtx) error {
		for i, q := range qs {
			id, created, err := t.incident(q.ContainerID, q.Rule, q.At, q.ReceivedAt)
			if err != nil {
				return fmt.Errorf("find incident of %s/%s: %w", q.ContainerID, q.Rule, err)
			}
			refs[i] = store.IncidentRef{ID: id, Created: created}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return refs, nil
}

// incident is one find-or-open inside a chain transaction.
func (t *wtx) incident(containerID, rule string, sent, received time.Time) (string, bool, error) {
	at, skewed := store.GroupTime(sent, received, t.s.opts.ClockSkew)
	atS := store.FormatTime(at)
	var id, lastSeen string
	err := t.queryRow(`SELECT id, last_seen FROM incidents WHERE container_id = $1 AND rule = $2 AND state = 'open'
		ORDER BY last_seen DESC LIMIT 1`, containerID, rule).Scan(&id, &lastSeen)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", false, err
	}
	if err == nil {
		ls, err := store.ParseTime(lastSeen)
		if err != nil {
			return "", false, err
		}
		if !at.After(ls.Add(t.s.opts.IncidentWindow)) {
			_, err := t.exec(`UPDATE incidents SET last_seen = GREATEST(last_seen, $1), alerts = alerts + 1 WHERE id = $2`, atS, id)
			return id, false, err
		}
	}
	id = store.NewID("inc", at)
	if _, err := t.exec(`INSERT INTO incidents (id, container_id, rule, opened_at, last_seen) VALUES ($1, $2, $3, $4, $4)`,
		id, containerID, rule, atS); err != nil {
		return "", false, err
	}
	detail := map[string]any{"incident": id, "container_id": containerID, "rule": rule}
	if skewed {
		detail["alert_time"] = store.FormatTime(sent)
		detail["received_at"] = store.FormatTime(received)
		detail["grouped_by"] = "received_at: alert time outside the clock skew tolerance"
	}
	e, err := store.PrepareEntry(store.Entry{Type: store.IncidentOpened, Actor: store.StoreActor, Detail: detail})
	if err != nil {
		return "", false, err
	}
	return id, true, t.append([]store.PreparedEntry{e}, nil)
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
