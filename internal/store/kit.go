package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
)

// This file exports the backend-independent rules of the store for a
// second implementation of Backend (internal/store/postgres): input checks,
// the entries the store journals itself, the action-run transition table,
// and the text forms of times and details. The SQLite store uses the same
// functions, so both backends check and encode alike.

// PreparedEntry is an entry checked and with its detail encoded as it is
// stored and hashed.
type PreparedEntry struct {
	Entry
	DetailJSON string
}

// PrepareEntries checks entries (type set, text fields valid UTF-8
// without NUL, sha256 64 lowercase hex digits) and encodes their details.
func PrepareEntries(entries []Entry) ([]PreparedEntry, error) {
	ps, err := prepareEntries(entries)
	return exportPrepared(ps), err
}

// PrepareEntry is PrepareEntries for one entry.
func PrepareEntry(e Entry) (PreparedEntry, error) {
	p, err := prepareEntry(e)
	return PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}, err
}

func exportPrepared(ps []prepared) []PreparedEntry {
	if ps == nil {
		return nil
	}
	out := make([]PreparedEntry, len(ps))
	for i, p := range ps {
		out[i] = PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}
	}
	return out
}

// ReceivedEntry is the alert.received entry Accept journals for a,
// received at now (skew: Options.ClockSkew).
func ReceivedEntry(a *alert.Alert, now time.Time, skew time.Duration) (PreparedEntry, error) {
	p, err := receivedEntry(a, now, skew)
	return PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}, err
}

// IncidentOpenedEntry is the incident.opened entry of incident id, opened
// for an alert of container and rule sent at sent and received at
// received; skewed: GroupTime grouped it by received.
func IncidentOpenedEntry(id, container, rule string, sent, received time.Time, skewed bool) (PreparedEntry, error) {
	p, err := incidentOpenedEntry(id, container, rule, sent, received, skewed)
	return PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}, err
}

// ConflictEntry is the alert.duplicate entry Accept journals when alert id
// arrives with content raw while the inbox holds stored under that id.
func ConflictEntry(id, raw, stored string) (PreparedEntry, error) {
	p, err := conflictEntry(&acceptItem{id: id, raw: raw}, stored)
	return PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}, err
}

// StoreActor is the actor of the entries the store journals itself.
const StoreActor = storeActor

// CheckText refuses text that is not valid UTF-8 or holds a NUL byte.
func CheckText(s string) error { return checkText(s) }

// CheckAlertID refuses an empty, too long or invalid alert id.
func CheckAlertID(id string) error { return checkAlertID(id) }

// CheckKey refuses an action key without alert id and playbook, with a
// negative index, or with invalid text.
func CheckKey(k ActionKey) error { return checkKey(k) }

// ValidActionState reports whether s is one of the action states.
func ValidActionState(s ActionState) bool { return validState(s) }

// TransitionAllowed is the action-run transition table of doc.go; cur is
// nil for a run that does not exist yet (its InDoubt must be set).
func TransitionAllowed(cur *ActionRun, to ActionState) bool {
	if cur == nil {
		return transitionAllowed(nil, to)
	}
	return transitionAllowed(&storedRun{ActionRun: *cur}, to)
}

// GroupTime is the time an alert is grouped into incidents by: sent,
// unless it is more than skew from received (when known); skewed reports
// that received was used.
func GroupTime(sent, received time.Time, skew time.Duration) (at time.Time, skewed bool) {
	return groupTime(sent, received, skew)
}

// NewID returns a readable, time-sortable random id: prefix-YYYYMMDD-HHMMSS-hex.
func NewID(prefix string, at time.Time) string { return newID(prefix, at) }

// ParseTime reads a time as FormatTime writes it; "" is the zero time.
func ParseTime(s string) (time.Time, error) { return parseTime(s) }

// MarshalDetail encodes a detail object as the store keeps it (nil: {}).
func MarshalDetail(d map[string]any) ([]byte, error) { return marshalDetail(d) }

// DecodeDetail reads a stored detail object, numbers as json.Number.
func DecodeDetail(raw string) (map[string]any, error) { return decodeDetail(raw) }

// PrepareMessage checks a message (key and kind set, valid text, JSON
// payload) and returns its payload as stored ("{}" when empty).
func PrepareMessage(m Message) (payload string, err error) {
	if m.Key == "" || m.Kind == "" {
		return "", errors.New("key and kind are required")
	}
	if err := errors.Join(checkText(m.Key), checkText(m.Kind), checkText(m.Target), checkText(m.Incident)); err != nil {
		return "", fmt.Errorf("message %s: %w", m.Key, err)
	}
	p := string(m.Payload)
	if p == "" {
		p = "{}"
	}
	if !json.Valid([]byte(p)) {
		return "", fmt.Errorf("message %s: payload is not valid JSON", m.Key)
	}
	if err := CheckFold(m.Fold); err != nil {
		return "", fmt.Errorf("message %s: %w", m.Key, err)
	}
	return p, nil
}

// Entry returns the entry a stored journal row holds, with its detail kept
// exactly as stored (so HashEntry and MarshalJSON reproduce the bytes).
func (r Row) Entry() (Entry, error) { return r.entry() }

// FoldPlan is what enqueue does with a message that has a Fold, decided
// from the key's state (ok: there is one) and, when it names a waiting
// message, whether that one still waits (pending and not yet leased).
type FoldPlan struct {
	// Join: fold the message into the waiting one (its payload replaces
	// that one's; its folded count grows).
	Join bool
	// Due is when the message goes out when it does not join.
	Due time.Time
	// Held: it does not go out at once.
	Held bool
}

// PlanFold decides for one message with a Fold.
func PlanFold(st FoldState, ok, waiting bool, notBefore, now time.Time) FoldPlan {
	if ok && st.Waiting != 0 && waiting {
		return FoldPlan{Join: true, Held: true}
	}
	due := now
	if ok && st.Next.After(due) {
		due = st.Next
	}
	if notBefore.After(due) {
		due = notBefore
	}
	return FoldPlan{Due: due, Held: due.After(now)}
}

// NextFoldState is the key's state after a message that did not join was
// stored as id, due at plan.Due.
func NextFoldState(f *Fold, plan FoldPlan, id int64) FoldState {
	st := FoldState{Next: plan.Due.Add(f.Every)}
	if plan.Held {
		st.Waiting = id
	}
	return st
}

// HeldEntry is the entry journaled for a held message: its Fold.Held with
// the carrier's id, due time and folded count in the detail; ok is false
// when the Fold asks for none.
func HeldEntry(f *Fold, carrier int64, due time.Time, folded int) (PreparedEntry, bool, error) {
	if f.Held.Type == "" {
		return PreparedEntry{}, false, nil
	}
	e := f.Held
	d := make(map[string]any, len(e.Detail)+3)
	for k, v := range e.Detail {
		d[k] = v
	}
	d["outbox_id"], d["folded"] = carrier, folded
	if !due.IsZero() {
		d["due"] = FormatTime(due)
	}
	e.Detail = d
	p, err := PrepareEntry(e)
	return p, err == nil, err
}

// CheckFold checks a message's Fold.
func CheckFold(f *Fold) error {
	if f == nil {
		return nil
	}
	if f.Key == "" || f.Every <= 0 {
		return errors.New("fold: key and a positive interval are required")
	}
	if f.Held.Type != "" {
		if _, err := PrepareEntry(f.Held); err != nil {
			return fmt.Errorf("fold: held entry: %w", err)
		}
	}
	return checkText(f.Key)
}
