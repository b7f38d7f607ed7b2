package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
)

// Kind says what a record describes.
type Kind string

// Record kinds.
const (
	KindAlert   Kind = "alert"
	KindJournal Kind = "journal"
)

// Kinds lists every kind.
func Kinds() []Kind { return []Kind{KindAlert, KindJournal} }

// UnmarshalText accepts "alert" and "journal".
func (k *Kind) UnmarshalText(b []byte) error {
	switch v := Kind(b); v {
	case KindAlert, KindJournal:
		*k = v
		return nil
	}
	return fmt.Errorf("unknown record kind %q (want alert or journal)", b)
}

// TypeAlert is the Type of alert records.
const TypeAlert = "alert"

// DeliveryDetailKey is the detail key of journal entries that record a
// stream delivery (its value is the output name). Such entries are never
// streamed; see the package doc.
const DeliveryDetailKey = "stream"

// Record is one alert or one journal entry on its way to the outputs. It
// marshals to JSON (the outbox payload) and back with encoding/json.
type Record struct {
	Kind Kind `json:"kind"`
	// ID is stable across retries and restarts: the alert's uuid, or the
	// journal entry's seq in decimal.
	ID string `json:"id"`
	// Type is "alert" for alerts and the entry type ("action.succeeded")
	// for journal entries.
	Type string    `json:"type"`
	Time time.Time `json:"time"`
	// Priority is the alert's, or derived for a journal entry (see
	// EntryPriority).
	Priority       alert.Priority `json:"priority"`
	Rule           string         `json:"rule,omitempty"`
	ContainerID    string         `json:"container_id,omitempty"`
	ContainerName  string         `json:"container_name,omitempty"`
	ContainerImage string         `json:"container_image,omitempty"` // repository[:tag]
	Incident       string         `json:"incident,omitempty"`
	AlertID        string         `json:"alert_id,omitempty"`
	// Hostname is the host the alert was raised on.
	Hostname string `json:"hostname,omitempty"`
	// SelfReport marks a journal entry about a stream delivery: never
	// streamed.
	SelfReport bool `json:"self_report,omitempty"`
	// JSON is the alert (Falco's shape) or the journal entry as one line of
	// compact JSON.
	JSON json.RawMessage `json:"json"`
}

// Key identifies the record among all records: "alert/<uuid>" or
// "journal/<seq>". The outbox dedupes on it (with the output name).
func (r Record) Key() string { return string(r.Kind) + "/" + r.ID }

// Validate reports what makes r unwritable. Outputs call it first: a record
// that fails it fails the same way every time (a permanent error).
func (r Record) Validate() error {
	switch {
	case r.Kind != KindAlert && r.Kind != KindJournal:
		return fmt.Errorf("invalid record: unknown kind %q", r.Kind)
	case r.ID == "":
		return errors.New("invalid record: empty id")
	case r.Type == "":
		return errors.New("invalid record: empty type")
	case r.Priority < alert.PriorityDebug || r.Priority > alert.PriorityEmergency:
		return fmt.Errorf("invalid record: priority %d out of range", int(r.Priority))
	case len(r.JSON) == 0:
		return errors.New("invalid record: empty json")
	case bytes.ContainsAny(r.JSON, "\r\n"):
		return errors.New("invalid record: json is not one line")
	case !json.Valid(r.JSON):
		return errors.New("invalid record: json is not valid")
	case r.JSON[0] != '{':
		return errors.New("invalid record: json is not an object")
	}
	return nil
}

// FromAlert builds the record of an alert. incident is the incident it
// joined, "" when none is known.
func FromAlert(a alert.Alert, incident string) (Record, error) {
	if a.ID == "" {
		return Record{}, errors.New("record alert: alert has no id")
	}
	b, err := a.MarshalJSON()
	if err != nil {
		return Record{}, fmt.Errorf("record alert %s: %w", a.ID, err)
	}
	r := Record{
		Kind: KindAlert, ID: a.ID, Type: TypeAlert, Time: a.Time, Priority: a.Priority,
		Rule: a.Rule, Incident: incident, AlertID: a.ID, Hostname: a.Hostname, JSON: b,
	}
	r.setContainer(a.Container())
	return r, nil
}

// FromEntry builds the record of an appended journal entry (Seq set). about
// is the alert the entry belongs to when the caller has it, and incident its
// incident; both are optional: what is missing is taken from the entry's
// detail where the store or the engine recorded it ("rule", "priority",
// "container_id", "container_name", "container_image", "incident").
func FromEntry(e store.Entry, about *alert.Alert, incident string) (Record, error) {
	if e.Seq <= 0 {
		return Record{}, fmt.Errorf("record journal entry %q: not appended (seq %d)", e.Type, e.Seq)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return Record{}, fmt.Errorf("record journal entry %d: %w", e.Seq, err)
	}
	detail := func(k string) string {
		s, _ := e.Detail[k].(string)
		return s
	}
	r := Record{
		Kind: KindJournal, ID: strconv.FormatInt(e.Seq, 10), Type: string(e.Type), Time: e.Time,
		AlertID: e.AlertID, Incident: incident, JSON: b,
	}
	if _, ok := e.Detail[DeliveryDetailKey]; ok {
		r.SelfReport = true
	}
	base := alert.PriorityInformational
	if about != nil {
		base = about.Priority
		r.Rule, r.Hostname = about.Rule, about.Hostname
		r.setContainer(about.Container())
		if r.AlertID == "" {
			r.AlertID = about.ID
		}
	} else {
		if p, err := alert.ParsePriority(detail("priority")); err == nil {
			base = p
		}
		r.Rule = detail("rule")
		r.ContainerID = detail("container_id")
		r.ContainerName = detail("container_name")
		r.ContainerImage = detail("container_image")
		r.Hostname = detail("hostname")
	}
	if r.Incident == "" {
		r.Incident = detail("incident")
	}
	r.Priority = EntryPriority(e.Type, base)
	return r, nil
}

func (r *Record) setContainer(c alert.Container) {
	r.ContainerID, r.ContainerName, r.ContainerImage = c.ID, c.Name, c.Image
	if c.Image != "" && c.Tag != "" {
		r.ContainerImage = c.Image + ":" + c.Tag
	}
}

// EntryPriority is the priority of a journal entry of type t about an alert
// of priority base (Informational when the entry belongs to no alert).
func EntryPriority(t store.EntryType, base alert.Priority) alert.Priority {
	switch t {
	case store.ActionFailed, store.ActionInDoubt, store.NotificationFailed:
		return max(base, alert.PriorityError)
	case store.ActionHeldForApproval, store.ActionBlockedProtected, store.ApprovalDenied, store.ApprovalTimeout:
		return max(base, alert.PriorityWarning)
	case store.AlertDuplicate:
		return alert.PriorityDebug
	}
	return base
}

// EntryTypes lists the journal entry types Filter.Types is checked against:
// every type the journal has.
func EntryTypes() []store.EntryType { return store.EntryTypes() }
