package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SilenceScope is what a silence mutes.
type SilenceScope string

// Silence scopes.
const (
	// ScopeNotify mutes notifications; containment still runs.
	ScopeNotify SilenceScope = "notify"
	// ScopeAll mutes every action (it needs an approver to be created).
	ScopeAll SilenceScope = "all"
)

// SilenceState is where a silence is. Whether an active silence is in
// force at a time depends on its start and end: see InForce.
type SilenceState string

// Silence states.
const (
	SilenceStatePending SilenceState = "pending" // scope all, waiting for a second person's approval
	SilenceStateActive  SilenceState = "active"  // in force between its start and end
	SilenceStateExpired SilenceState = "expired" // ended early by someone (EndsAt is then)
	SilenceStateEnded   SilenceState = "ended"   // its end passed (journaled)
	SilenceStateDeleted SilenceState = "deleted" // withdrawn: as if it never was
)

// SilenceMatcher selects alerts; every criterion that is set must hold.
// The store keeps it as given; the silence package compiles and checks it.
type SilenceMatcher struct {
	Rules      []string `json:"rules,omitempty"`      // rule globs, any of
	Priority   string   `json:"priority,omitempty"`   // ">=warning", as in playbooks
	Tags       []string `json:"tags,omitempty"`       // all of
	Containers []string `json:"containers,omitempty"` // container name or id globs, any of
	Images     []string `json:"images,omitempty"`     // image repository globs, any of
	Pods       []string `json:"pods,omitempty"`       // k8s.pod.name globs, any of
	Namespaces []string `json:"namespaces,omitempty"` // k8s.ns.name globs, any of
	When       string   `json:"when,omitempty"`       // expr-lang condition, as a playbook's when
}

// Empty reports whether the matcher sets no criterion (it would match
// every alert).
func (m SilenceMatcher) Empty() bool {
	return len(m.Rules) == 0 && m.Priority == "" && len(m.Tags) == 0 && len(m.Containers) == 0 &&
		len(m.Images) == 0 && len(m.Pods) == 0 && len(m.Namespaces) == 0 && m.When == ""
}

// Silence is one stored silence.
type Silence struct {
	ID        string         `json:"id"`
	Matcher   SilenceMatcher `json:"matcher"`
	Scope     SilenceScope   `json:"scope"`
	StartsAt  time.Time      `json:"starts_at"`
	EndsAt    time.Time      `json:"ends_at"`
	CreatedBy string         `json:"created_by"`
	// ApprovedBy is who approved a silence of scope all.
	ApprovedBy string       `json:"approved_by,omitempty"`
	Comment    string       `json:"comment,omitempty"`
	State      SilenceState `json:"state"`
	// EndedBy is who expired or deleted it.
	EndedBy   string    `json:"ended_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// InForce reports whether the silence mutes alerts at t: approved, not
// deleted, and t within [StartsAt, EndsAt).
func (s Silence) InForce(t time.Time) bool {
	return s.State != SilenceStateDeleted && s.State != SilenceStatePending && !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// SilenceFilter selects silences. Zero fields do not filter; deleted
// silences are left out unless Deleted is set.
type SilenceFilter struct {
	// EndsAfter: silences whose end is after this time (in force now or
	// later, when it is now).
	EndsAfter time.Time
	Deleted   bool
}

// SilenceEnd is how a silence is ended by someone.
type SilenceEnd struct {
	// Delete marks the silence deleted instead of expired.
	Delete bool
	By     string
}

// CheckSilence checks a silence to be added: a known scope, an end after
// its start, a creator, valid text. It returns the matcher as stored.
func CheckSilence(s Silence) (matcher string, err error) {
	var errs []error
	if s.Scope != ScopeNotify && s.Scope != ScopeAll {
		errs = append(errs, fmt.Errorf("scope must be notify or all, got %q", s.Scope))
	}
	if s.StartsAt.IsZero() || s.EndsAt.IsZero() {
		errs = append(errs, errors.New("start and end are required"))
	} else if !s.EndsAt.After(s.StartsAt) {
		errs = append(errs, errors.New("end must be after start"))
	}
	if s.CreatedBy == "" {
		errs = append(errs, errors.New("creator is required"))
	}
	if s.Matcher.Empty() {
		errs = append(errs, errors.New("matcher sets no criterion"))
	}
	if s.ApprovedBy != "" && s.ApprovedBy == s.CreatedBy {
		errs = append(errs, errors.New("the approver must be another person than the creator"))
	}
	errs = append(errs, checkText(s.CreatedBy), checkText(s.ApprovedBy), checkText(s.Comment))
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	b, err := json.Marshal(s.Matcher)
	if err != nil {
		return "", err
	}
	if err := checkText(string(b)); err != nil {
		return "", fmt.Errorf("matcher: %w", err)
	}
	return string(b), nil
}

// InitialSilenceState is the state a new silence is stored in: pending
// when its scope is all and nobody approved it yet, else active.
func InitialSilenceState(s Silence) SilenceState {
	if s.Scope == ScopeAll && s.ApprovedBy == "" {
		return SilenceStatePending
	}
	return SilenceStateActive
}

// ApprovedSilence is sl approved by by at now, or why it cannot be: only
// a pending silence is approved, by another person than its creator.
func ApprovedSilence(sl Silence, by string, now time.Time) (Silence, error) {
	switch {
	case by == "":
		return sl, errors.New("approver is required")
	case sl.State != SilenceStatePending:
		return sl, fmt.Errorf("silence is %s: %w", sl.State, ErrState)
	case by == sl.CreatedBy:
		return sl, fmt.Errorf("the approver must be another person than the creator %s: %w", sl.CreatedBy, ErrState)
	}
	sl.State, sl.ApprovedBy, sl.UpdatedAt = SilenceStateActive, by, now
	return sl, nil
}

// SilenceEndedEntry is the silence.ended entry the store journals when a
// silence's end passes.
func SilenceEndedEntry(s Silence) Entry {
	return Entry{Type: SilenceEnded, Actor: storeActor, Detail: map[string]any{
		"silence": s.ID, "ends_at": FormatTime(s.EndsAt), "scope": string(s.Scope),
	}}
}

// SilenceColumns are the silences table's columns, in ScanSilence's order.
const SilenceColumns = `id, matcher, scope, starts_at, ends_at, created_by, approved_by, comment, state, ended_by, created_at, updated_at`

// ScanSilence reads a row of SilenceColumns.
func ScanSilence(sc interface{ Scan(...any) error }) (Silence, error) {
	var s Silence
	var matcher, starts, ends, created, updated string
	if err := sc.Scan(&s.ID, &matcher, &s.Scope, &starts, &ends, &s.CreatedBy, &s.ApprovedBy, &s.Comment,
		&s.State, &s.EndedBy, &created, &updated); err != nil {
		return s, err
	}
	if err := json.Unmarshal([]byte(matcher), &s.Matcher); err != nil {
		return s, fmt.Errorf("silence %s: matcher: %w", s.ID, err)
	}
	var errs [4]error
	s.StartsAt, errs[0] = parseTime(starts)
	s.EndsAt, errs[1] = parseTime(ends)
	s.CreatedAt, errs[2] = parseTime(created)
	s.UpdatedAt, errs[3] = parseTime(updated)
	return s, errors.Join(errs[:]...)
}

// AddSilence stores a new silence; see Silences.
func (s *Store) AddSilence(ctx context.Context, sl Silence, entries ...Entry) (Silence, error) {
	matcher, err := CheckSilence(sl)
	if err != nil {
		return Silence{}, fmt.Errorf("add silence: %w", err)
	}
	sl.ID = newID("sil", s.now())
	prep, err := prepareEntries(NameSilence(entries, sl.ID))
	if err != nil {
		return Silence{}, fmt.Errorf("add silence: %w", err)
	}
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		sl.State, sl.CreatedAt, sl.UpdatedAt = InitialSilenceState(sl), t.now, t.now
		sl.StartsAt, sl.EndsAt, sl.EndedBy = sl.StartsAt.UTC(), sl.EndsAt.UTC(), ""
		if _, err := t.exec(`INSERT INTO silences (`+SilenceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)`,
			sl.ID, matcher, string(sl.Scope), FormatTime(sl.StartsAt), FormatTime(sl.EndsAt), sl.CreatedBy, sl.ApprovedBy,
			sl.Comment, string(sl.State), FormatTime(t.now), FormatTime(t.now)); err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return Silence{}, fmt.Errorf("add silence: %w", err)
	}
	return sl, nil
}

// NameSilence returns entries with the silence id in their details (where
// they do not name one): the id is made by the store.
func NameSilence(entries []Entry, id string) []Entry {
	out := make([]Entry, len(entries))
	for i, e := range entries {
		d := make(map[string]any, len(e.Detail)+1)
		for k, v := range e.Detail {
			d[k] = v
		}
		if _, ok := d["silence"]; !ok {
			d["silence"] = id
		}
		e.Detail = d
		out[i] = e
	}
	return out
}

// GetSilence returns one silence, or ErrNotFound.
func (s *Store) GetSilence(ctx context.Context, id string) (Silence, error) {
	sl, err := ScanSilence(s.rdb.QueryRowContext(ctx, `SELECT `+SilenceColumns+` FROM silences WHERE id = ?`, id))
	if err != nil {
		return Silence{}, fmt.Errorf("get silence %s: %w", id, notFound(err))
	}
	return sl, nil
}

// ListSilences returns silences by start time; see Silences.
func (s *Store) ListSilences(ctx context.Context, f SilenceFilter) ([]Silence, error) {
	q := `SELECT ` + SilenceColumns + ` FROM silences WHERE ends_at > ?`
	if !f.Deleted {
		q += ` AND state <> 'deleted'`
	}
	rows, err := s.rdb.QueryContext(ctx, q+` ORDER BY starts_at, id`, FormatTime(f.EndsAfter))
	if err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	defer rows.Close()
	var out []Silence
	for rows.Next() {
		sl, err := ScanSilence(rows)
		if err != nil {
			return nil, fmt.Errorf("list silences: %w", err)
		}
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list silences: %w", err)
	}
	return out, nil
}

// EndSilence expires or deletes a silence; see Silences.
func (s *Store) EndSilence(ctx context.Context, id string, e SilenceEnd, entries ...Entry) (Silence, bool, error) {
	if err := checkText(e.By); err != nil {
		return Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	prep, err := prepareEntries(NameSilence(entries, id))
	if err != nil {
		return Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	var sl Silence
	var changed bool
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		changed = false
		var err error
		if sl, err = ScanSilence(t.queryRow(`SELECT `+SilenceColumns+` FROM silences WHERE id = ?`, id)); err != nil {
			return notFound(err)
		}
		next, ok := EndedSilence(sl, e, t.now)
		if !ok {
			return nil
		}
		sl = next
		if _, err := t.exec(`UPDATE silences SET state = ?, starts_at = ?, ends_at = ?, ended_by = ?, updated_at = ? WHERE id = ?`,
			string(sl.State), FormatTime(sl.StartsAt), FormatTime(sl.EndsAt), sl.EndedBy, FormatTime(t.now), id); err != nil {
			return err
		}
		changed = true
		return t.append(prep, nil)
	})
	if err != nil {
		return Silence{}, false, fmt.Errorf("end silence %s: %w", id, err)
	}
	return sl, changed, nil
}

// EndedSilence is sl after e at now, and whether e changes it: expiring
// an active silence that has not ended moves its end to now (a silence
// that has not started yet keeps no time in force); deleting marks any
// silence not deleted yet.
func EndedSilence(sl Silence, e SilenceEnd, now time.Time) (Silence, bool) {
	switch {
	case e.Delete && sl.State != SilenceStateDeleted:
		sl.State = SilenceStateDeleted
	case !e.Delete && (sl.State == SilenceStateActive || sl.State == SilenceStatePending) && sl.EndsAt.After(now):
		sl.State = SilenceStateExpired
		sl.EndsAt = now
		if sl.StartsAt.After(now) {
			sl.StartsAt = now
		}
	default:
		return sl, false
	}
	sl.EndedBy, sl.UpdatedAt = e.By, now
	return sl, true
}

// ApproveSilence approves a pending silence; see Silences.
func (s *Store) ApproveSilence(ctx context.Context, id, by string, entries ...Entry) (Silence, error) {
	if err := checkText(by); err != nil {
		return Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	prep, err := prepareEntries(NameSilence(entries, id))
	if err != nil {
		return Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	var sl Silence
	err = s.write(ctx, 1+len(prep), func(t *wtx) error {
		cur, err := ScanSilence(t.queryRow(`SELECT `+SilenceColumns+` FROM silences WHERE id = ?`, id))
		if err != nil {
			return notFound(err)
		}
		if sl, err = ApprovedSilence(cur, by, t.now); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE silences SET state = ?, approved_by = ?, updated_at = ? WHERE id = ?`,
			string(sl.State), sl.ApprovedBy, FormatTime(t.now), id); err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return Silence{}, fmt.Errorf("approve silence %s: %w", id, err)
	}
	return sl, nil
}

// CloseEndedSilences journals the natural end of silences; see Silences.
func (s *Store) CloseEndedSilences(ctx context.Context) ([]Silence, error) {
	var ended []Silence
	err := s.write(ctx, 4, func(t *wtx) error {
		ended = nil
		rows, err := t.query(`SELECT `+SilenceColumns+` FROM silences WHERE state IN ('active', 'pending') AND ends_at <= ? ORDER BY ends_at, id`, FormatTime(t.now))
		if err != nil {
			return err
		}
		for rows.Next() {
			sl, err := ScanSilence(rows)
			if err != nil {
				rows.Close()
				return err
			}
			ended = append(ended, sl)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ended) == 0 {
			return nil
		}
		entries := make([]Entry, len(ended))
		for i := range ended {
			ended[i].State, ended[i].UpdatedAt = SilenceStateEnded, t.now
			if _, err := t.exec(`UPDATE silences SET state = 'ended', updated_at = ? WHERE id = ?`, FormatTime(t.now), ended[i].ID); err != nil {
				return err
			}
			entries[i] = SilenceEndedEntry(ended[i])
		}
		prep, err := prepareEntries(entries)
		if err != nil {
			return err
		}
		return t.append(prep, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("close ended silences: %w", err)
	}
	return ended, nil
}
