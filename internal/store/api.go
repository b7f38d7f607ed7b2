package store

import (
	"context"
	"errors"
	"iter"
	"path/filepath"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// FileName is the SQLite file inside a data directory.
const FileName = "riposte.db"

// PathIn returns the SQLite file of a data directory: <dataDir>/riposte.db.
func PathIn(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Errors callers can test with errors.Is.
var (
	// ErrNotFound: no incident, action run, approval or outbox item by that id.
	ErrNotFound = errors.New("not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrReadOnly: a write on a store opened with Options.ReadOnly.
	ErrReadOnly = errors.New("store opened read-only")
	// ErrState: the record is in a state that does not allow the change
	// (holding an action that already ran, for instance).
	ErrState = errors.New("not allowed in this state")
)

// Backend is everything the engine, the server and the notifiers need from
// durable storage. *Store (SQLite) implements it; a PostgreSQL store would be
// a second implementation of the same interfaces. Depend on the smallest one
// that does the job.
type Backend interface {
	Inbox
	Journal
	Incidents
	ActionRuns
	Approvals
	Outbox
	KV
	Silences
	History
	Maintenance
	Close() error
}

// KV is a small key/value table for notifier state (namespaced); values
// are UTF-8 text, typically JSON.
type KV interface {
	Get(ctx context.Context, ns, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, ns, key string, value []byte) error
}

// Silences are matchers that mute the actions of the alerts they match
// for a time (silences.go has the record). A silence is never removed:
// expiring one moves its end to now, deleting one marks it deleted, so
// that what was in force at any past time can be told (playbook replay).
type Silences interface {
	// AddSilence stores s (the store sets ID, State and CreatedAt) and
	// appends entries in the same transaction; it returns s as stored.
	AddSilence(ctx context.Context, s Silence, entries ...Entry) (Silence, error)
	GetSilence(ctx context.Context, id string) (Silence, error)
	// ListSilences returns the silences that pass f, by start time.
	ListSilences(ctx context.Context, f SilenceFilter) ([]Silence, error)
	// ApproveSilence makes a pending silence (scope all, created without
	// an approver) active, with entries, in one transaction; by must be
	// another person than its creator (ErrState otherwise, and for a
	// silence that is not pending).
	ApproveSilence(ctx context.Context, id, by string, entries ...Entry) (Silence, error)
	// EndSilence expires (or deletes) a silence now, with entries, in one
	// transaction; changed is false, and nothing is appended, when it had
	// ended already (or, to delete, was deleted already).
	EndSilence(ctx context.Context, id string, e SilenceEnd, entries ...Entry) (s Silence, changed bool, err error)
	// CloseEndedSilences marks the active silences whose end has passed
	// as ended and journals silence.ended for each, in one transaction, and
	// returns them; replicas calling it together journal each end once.
	CloseEndedSilences(ctx context.Context) ([]Silence, error)
}

// History reads back the processed alerts the inbox still keeps (for
// Options.DuplicateWindow), for `riposte playbook replay`.
type History interface {
	// AlertsSince returns the processed alerts received at or after since,
	// in the order they were received (alerts still waiting or in
	// processing are left out: their journal is not complete).
	AlertsSince(ctx context.Context, since time.Time) ([]InboxItem, error)
}

// Nonces remembers one-time keys (the canonical form of a signed request)
// until they expire, across restarts, so that a captured request is refused
// when it is sent again. It is not part of Backend: a backend without it
// leaves its callers to an in-memory cache.
type Nonces interface {
	// FirstUse records key in ns until expires and reports whether it was
	// not recorded already (or its record had expired). Concurrent calls
	// with one key: exactly one is first.
	FirstUse(ctx context.Context, ns, key string, expires time.Time) (first bool, err error)
}

// Maintenance is for the process that owns the store.
type Maintenance interface {
	// Stats returns counts for metrics (queue depths, journal length).
	Stats(ctx context.Context) (Stats, error)
	// Prune deletes processed alerts and settled messages older than the
	// duplicate window, and node actions finished as long ago; the journal
	// is never pruned.
	Prune(ctx context.Context) (Pruned, error)
}

// Inbox holds accepted alerts until the engine has processed them.
type Inbox interface {
	// Accept stores alerts in the inbox and journals alert.received for each
	// new one and alert.duplicate for each id already in the inbox, in one
	// transaction, and returns only once that transaction is durable. The
	// result has one element per alert, in order. Concurrent callers share
	// one commit (group commit).
	Accept(ctx context.Context, alerts []alert.Alert) ([]Accepted, error)
	// AcceptClaimed is Accept, with the new alerts also claimed for this
	// store and their incidents found, in the same transaction, for a
	// caller that processes them at once.
	AcceptClaimed(ctx context.Context, alerts []alert.Alert, lease time.Duration) ([]Accepted, []InboxItem, error)
	// AcceptSettled is AcceptClaimed for a caller that has processed some
	// of the alerts already: where settled[i] is not nil, alert i is stored
	// done, with its incident found or opened and settled[i].Entries
	// journaled right after its alert.received, in the accept's
	// transaction (a duplicate's settled entries are dropped). The other
	// new alerts are claimed for lease and returned in items, as
	// AcceptClaimed does; with lease 0 they are stored pending, as Accept
	// does. incidents[i] is new alert i's incident when it was settled or
	// claimed, else "". settled may be shorter than alerts.
	AcceptSettled(ctx context.Context, alerts []alert.Alert, settled []*Settled, lease time.Duration) (accepted []Accepted, items []InboxItem, incidents []string, err error)
	// ClaimAlerts takes up to max alerts that wait for processing, oldest
	// first: pending ones, ones whose lease ran out, and ones a previous
	// process had claimed (it crashed). They stay claimed for lease.
	ClaimAlerts(ctx context.Context, max int, lease time.Duration) ([]InboxItem, error)
	// ExtendClaims renews the lease of those of ids that this store has
	// claimed and not finished, to lease from now, and returns how many it
	// renewed: a worker whose alerts take longer than a lease keeps them
	// (another replica would otherwise take them over as abandoned).
	ExtendClaims(ctx context.Context, ids []string, lease time.Duration) (int, error)
	// FinishAlert marks an alert processed and appends entries in the same
	// transaction. Finishing an alert twice is a no-op (entries are then not
	// appended).
	FinishAlert(ctx context.Context, id string, entries ...Entry) error
}

// Settled is an alert processed before it was stored: processing needs
// no responder (no playbook matched it, or only playbooks in dry run), so
// what processing journals is written in the alert's accept transaction
// and the alert is stored done. See AcceptSettled.
type Settled struct {
	// Entries are journaled after the alert's alert.received (and the
	// incident.opened of an incident it opened), in order. A detail value
	// TheIncident, at any depth, stands for the alert's incident id.
	Entries []Entry
}

// Accepted is what Accept did with one alert.
type Accepted struct {
	ID string `json:"id"`
	// Duplicate: the id was already in the inbox; nothing was stored and
	// alert.duplicate was journaled.
	Duplicate bool `json:"duplicate,omitempty"`
	// Conflict: the id was in the inbox with different content (Duplicate
	// is also set); nothing was stored and alert.duplicate was journaled
	// with both contents' hashes and the refused alert.
	Conflict bool `json:"conflict,omitempty"`
}

// InboxState is where an alert is in the inbox.
type InboxState string

// Inbox states.
const (
	InboxPending    InboxState = "pending"
	InboxProcessing InboxState = "processing"
	InboxDone       InboxState = "done"
)

// InboxItem is one claimed alert.
type InboxItem struct {
	Alert      alert.Alert
	ReceivedAt time.Time
	// Attempts counts claims, this one included: above 1 the alert was
	// claimed before and not finished (crash, or lease ran out).
	Attempts int
	// Incident is the alert's incident when AcceptClaimed found it; ""
	// for ClaimAlerts (the engine finds it while processing).
	Incident string
}

// Journal is the append-only, hash-chained incident-response journal.
type Journal interface {
	// Append appends entries in order and returns them with Seq, Time,
	// PrevHash and Hash set, once durable.
	Append(ctx context.Context, entries ...Entry) ([]Entry, error)
	// Entries returns the entries that pass f, by seq.
	Entries(ctx context.Context, f Filter) ([]Entry, error)
	// Scan streams the entries that pass f, by seq, without holding them
	// all in memory. Stop early by breaking out of the loop.
	Scan(ctx context.Context, f Filter) iter.Seq2[Entry, error]
	// Head returns the last entry's seq and hash (zero on an empty journal).
	Head(ctx context.Context) (Head, error)
	// Verify recomputes the chain and reports the first edited, removed or
	// reordered entry, or a cut tail. The error is for failures to read,
	// not for tampering: that is in the Report.
	Verify(ctx context.Context) (Report, error)
}

// EntryType is what a journal entry records.
type EntryType string

// Journal entry types: the journal's whole vocabulary, declared here once.
// The store writes alert.received, alert.duplicate and incident.opened
// itself; the engine and the assembly write the others. EntryTypes lists
// them for filters and completion.
const (
	AlertReceived          EntryType = "alert.received"
	AlertDuplicate         EntryType = "alert.duplicate"
	IncidentOpened         EntryType = "incident.opened"
	IncidentReleased       EntryType = "incident.released"
	PlaybookMatched        EntryType = "playbook.matched"
	ActionPlanned          EntryType = "action.planned"
	ActionStarted          EntryType = "action.started"
	ActionSucceeded        EntryType = "action.succeeded"
	ActionFailed           EntryType = "action.failed"
	ActionSkippedDryRun    EntryType = "action.skipped_dry_run"
	ActionBlockedProtected EntryType = "action.blocked_protected"
	ActionHeldForApproval  EntryType = "action.held_for_approval"
	ActionInDoubt          EntryType = "action.in_doubt"
	ApprovalGranted        EntryType = "approval.granted"
	ApprovalDenied         EntryType = "approval.denied"
	ApprovalTimeout        EntryType = "approval.timeout"
	NotificationSent       EntryType = "notification.sent"
	NotificationFailed     EntryType = "notification.failed"
	Note                   EntryType = "note"
	// ActionSkipped: the action's `if` was false, or it has no target (a
	// container action for a host alert).
	ActionSkipped EntryType = "action.skipped"
	// ActionQueued: a notification is durably in the outbox.
	ActionQueued EntryType = "action.queued"
	// IncidentAcknowledged: a human took the incident.
	IncidentAcknowledged EntryType = "incident.acknowledged"
	// CaptureFinished: a background capture ended; its manifest's hash.
	CaptureFinished EntryType = "capture.finished"
	// ActionRefusedBudget: a hand-run destructive action was refused by
	// the blast-radius budget (no override given).
	ActionRefusedBudget EntryType = "action.refused_blast_radius"
	// JournalCheckpoint: a signed checkpoint of the journal's head
	// (internal/anchor); detail holds seq, hash, time, key and signature.
	JournalCheckpoint EntryType = "journal.checkpoint"
	// ActionEnforced: the detector's kernel hook decided about an exec of
	// a rule marked enforce: (signalled it, would have in dry run, or held
	// back by its budget), journaled after the fact by the engine; detail
	// holds outcome, signal, pid, exe and container.
	ActionEnforced EntryType = "action.enforced"
	// Silences (silences.go): created, expired and deleted by someone,
	// ended when their end passed; alert.silenced names the silence that
	// matched an alert.
	SilenceCreated  EntryType = "silence.created"
	SilenceApproved EntryType = "silence.approved"
	SilenceExpired  EntryType = "silence.expired"
	SilenceDeleted  EntryType = "silence.deleted"
	SilenceEnded    EntryType = "silence.ended"
	AlertSilenced   EntryType = "alert.silenced"
	// NotificationThrottled: a throttled notification was held for its
	// incident's next update (see Fold); the update's notification.sent
	// says how many it carried.
	NotificationThrottled EntryType = "notification.throttled"
)

// EntryTypes lists every journal entry type, in the order a run writes
// them.
func EntryTypes() []EntryType {
	return []EntryType{
		AlertReceived, AlertDuplicate, IncidentOpened, PlaybookMatched, ActionPlanned, ActionSkipped,
		ActionSkippedDryRun, ActionBlockedProtected, ActionHeldForApproval, ApprovalGranted, ApprovalDenied,
		ApprovalTimeout, ActionStarted, ActionSucceeded, ActionFailed, ActionInDoubt, ActionQueued,
		NotificationThrottled, NotificationSent, NotificationFailed, CaptureFinished, Note, IncidentAcknowledged, IncidentReleased,
		ActionRefusedBudget, JournalCheckpoint, ActionEnforced, SilenceCreated, SilenceApproved, SilenceExpired, SilenceDeleted, SilenceEnded, AlertSilenced,
	}
}

// Known reports whether t is one of EntryTypes.
func (t EntryType) Known() bool {
	for _, k := range EntryTypes() {
		if k == t {
			return true
		}
	}
	return false
}

// Entry is one journal entry. On Append, set Type and whatever of AlertID,
// Playbook, Action, Actor, Detail and SHA256 applies; the store sets Seq,
// Time, PrevHash and Hash. Text fields must be valid UTF-8 without NUL.
type Entry struct {
	Seq      int64     `json:"seq"`
	Time     time.Time `json:"time"`
	Type     EntryType `json:"type"`
	AlertID  string    `json:"alert_id"`
	Playbook string    `json:"playbook"`
	Action   string    `json:"action"`
	Actor    string    `json:"actor"`
	// Detail is a JSON object; nil is stored as {}. Read back, numbers are
	// json.Number so that they keep their exact text.
	Detail map[string]any `json:"detail"`
	// SHA256 is the hash of the evidence the step produced, "" when none.
	SHA256   string `json:"sha256"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`

	rawDetail []byte // as stored; set on entries read back
}

// Filter selects journal entries. Zero fields do not filter.
type Filter struct {
	AlertID  string
	Since    time.Time // entries at or after
	Types    []EntryType
	AfterSeq int64 // entries with a greater seq (to follow the journal)
	Limit    int   // at most this many; 0: all
}

// Head is the end of the chain.
type Head struct {
	Seq  int64     `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// Report is the outcome of Verify.
type Report struct {
	Entries int64 `json:"entries"` // entries read
	// Head is the recorded head (journal_head), which Verify checks the
	// last entry against.
	Head Head `json:"head"`
	// Problem is the first problem found; nil when the chain is intact.
	Problem *Problem `json:"problem,omitempty"`
}

// OK reports whether the journal verified.
func (r Report) OK() bool { return r.Problem == nil }

// ProblemKind classifies what Verify found.
type ProblemKind string

// Problem kinds.
const (
	Edited    ProblemKind = "edited"    // the entry's content does not match its hash
	Moved     ProblemKind = "reordered" // the entry holds content recorded at another seq
	Missing   ProblemKind = "removed"   // a gap in the seqs
	Unchained ProblemKind = "unchained" // prev_hash is not the previous entry's hash
	Truncated ProblemKind = "truncated" // entries at the end are gone (head records more)
	HeadBad   ProblemKind = "head"      // the recorded head is missing or does not match
)

// Problem is the first bad entry Verify found.
type Problem struct {
	Seq     int64       `json:"seq"` // the first bad entry
	Kind    ProblemKind `json:"kind"`
	Message string      `json:"message"`
}

func (p *Problem) Error() string { return p.Message }

// Incidents groups alerts by container and rule within a window.
type Incidents interface {
	// Incident returns the open incident for (containerID, rule) whose last
	// alert is within the incident window of at, extending it, or opens a
	// new one (created is then true and incident.opened is journaled in the
	// same transaction).
	Incident(ctx context.Context, containerID, rule string, at time.Time) (id string, created bool, err error)
	// IncidentsFor is Incident for several alerts, in order, in one
	// transaction (the engine's batches).
	IncidentsFor(ctx context.Context, qs []IncidentQuery) ([]IncidentRef, error)
	GetIncident(ctx context.Context, id string) (IncidentInfo, error)
	// ListIncidents returns incidents, newest first.
	ListIncidents(ctx context.Context, f IncidentFilter) ([]IncidentInfo, error)
	// SetIncidentState changes the state and appends entries in the same
	// transaction; changed is false (and nothing is appended) when the
	// incident already was in that state. A released incident is never
	// joined again: the next alert opens a new one.
	SetIncidentState(ctx context.Context, id string, state IncidentState, entries ...Entry) (changed bool, err error)
}

// IncidentQuery asks for the incident of one alert.
type IncidentQuery struct {
	ContainerID, Rule string
	// At is the alert's time (the sender's clock).
	At time.Time
	// ReceivedAt, when set, is when the alert was received: At is used
	// only when it is within Options.ClockSkew of it.
	ReceivedAt time.Time
}

// IncidentRef is the incident an alert belongs to.
type IncidentRef struct {
	ID      string
	Created bool
}

// IncidentState is open or released.
type IncidentState string

// Incident states.
const (
	IncidentStateOpen     IncidentState = "open"
	IncidentStateReleased IncidentState = "released"
)

// IncidentInfo is one incident.
type IncidentInfo struct {
	ID          string        `json:"id"`
	ContainerID string        `json:"container_id"`
	Rule        string        `json:"rule"`
	State       IncidentState `json:"state"`
	OpenedAt    time.Time     `json:"opened_at"`
	LastSeen    time.Time     `json:"last_seen"`
	// Alerts counts Incident calls that joined it (an alert processed again
	// after a crash counts again).
	Alerts     int       `json:"alerts"`
	ReleasedAt time.Time `json:"released_at,omitzero"`
}

// IncidentFilter selects incidents. Zero fields do not filter.
type IncidentFilter struct {
	State IncidentState
	Limit int
}

// ActionRuns records what happened to every planned action, keyed by
// (alert id, playbook, action index), so that no action runs twice.
type ActionRuns interface {
	// ClaimAction moves the run to started, owned by this store, with
	// entries appended in the same transaction, if the run is new or
	// planned. Otherwise it changes nothing, appends nothing, and Outcome
	// says why. See ClaimOutcome, and doc.go on in-doubt runs.
	ClaimAction(ctx context.Context, c ClaimRequest, entries ...Entry) (Claim, error)
	// RecordAction applies u if the transition is allowed (see doc.go) and
	// appends entries in the same transaction; applied is false, and nothing
	// is appended, when it is not (a repeat after a crash, a run already
	// finished). run is the state after the call either way.
	RecordAction(ctx context.Context, u ActionUpdate, entries ...Entry) (run ActionRun, applied bool, err error)
	GetAction(ctx context.Context, key ActionKey) (ActionRun, error)
	// UnfinishedActions lists runs that are planned, held or started, oldest
	// first; started runs of an earlier process have InDoubt set.
	UnfinishedActions(ctx context.Context) ([]ActionRun, error)
	// ActionsFor lists an alert's runs by playbook and index.
	ActionsFor(ctx context.Context, alertID string) ([]ActionRun, error)
	// Apply makes a Batch of changes in one transaction; see Batch.
	Apply(ctx context.Context, b Batch) (BatchResult, error)
}

// ActionKey identifies one planned action.
type ActionKey struct {
	AlertID  string `json:"alert_id"`
	Playbook string `json:"playbook"`
	Index    int    `json:"index"`
}

// String is the key as actions.Request.Key carries it: "alert/playbook/index".
func (k ActionKey) String() string {
	return k.AlertID + "/" + k.Playbook + "/" + strconv.Itoa(k.Index)
}

// ActionState is where an action run is.
type ActionState string

// Action states. Succeeded, failed and skipped are final.
const (
	ActionStatePlanned   ActionState = "planned"
	ActionStateStarted   ActionState = "started"
	ActionStateSucceeded ActionState = "succeeded"
	ActionStateFailed    ActionState = "failed"
	ActionStateSkipped   ActionState = "skipped" // dry run, protected container, denied approval
	ActionStateHeld      ActionState = "held"    // waiting for approval
)

// Final reports whether nothing may happen to the run any more.
func (s ActionState) Final() bool {
	return s == ActionStateSucceeded || s == ActionStateFailed || s == ActionStateSkipped
}

// ActionRun is the recorded state of one action.
type ActionRun struct {
	Key         ActionKey       `json:"key"`
	Action      string          `json:"action"`
	Incident    string          `json:"incident,omitempty"`
	State       ActionState     `json:"state"`
	Destructive bool            `json:"destructive,omitempty"`
	Result      *actions.Result `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	// Attempts counts starts (claims and take-overs).
	Attempts int `json:"attempts"`
	// InDoubt: started by an earlier process that never recorded the
	// outcome; it may or may not have taken effect.
	InDoubt   bool      `json:"in_doubt,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ClaimRequest asks to start one action.
type ClaimRequest struct {
	Key         ActionKey
	Action      string // "container.pause"; stored when the run is new
	Incident    string
	Destructive bool
	// Budget, when Max > 0 and Destructive, refuses the claim (OverBudget)
	// when Max destructive runs already started within Window: the
	// blast-radius limit, checked and counted atomically.
	Budget Budget
}

// Budget is a blast-radius limit: at most Max destructive starts per Window.
type Budget struct {
	Max    int
	Window time.Duration
}

// ClaimOutcome is the answer to ClaimAction.
type ClaimOutcome string

// Claim outcomes.
const (
	// ClaimRun: the run is now started and owned by the caller: run it,
	// then RecordAction succeeded or failed.
	ClaimRun ClaimOutcome = "run"
	// ClaimDone: the run is final; do not run it again.
	ClaimDone ClaimOutcome = "done"
	// ClaimHeld: waiting for approval; DecideApproval moves it on.
	ClaimHeld ClaimOutcome = "held"
	// ClaimBusy: started by this store and not finished: another worker of
	// this process runs it now.
	ClaimBusy ClaimOutcome = "busy"
	// ClaimInDoubt: started by an earlier process that crashed before it
	// recorded the outcome. The caller decides: RecordAction started to take
	// it over and run it again, or RecordAction failed.
	ClaimInDoubt ClaimOutcome = "in_doubt"
	// ClaimOverBudget: the blast-radius budget is spent; nothing changed.
	ClaimOverBudget ClaimOutcome = "over_budget"
)

// Claim is the outcome of ClaimAction and the run as it now is.
type Claim struct {
	Outcome ClaimOutcome
	Run     ActionRun
}

// ActionUpdate is one transition of an action run.
type ActionUpdate struct {
	Key         ActionKey
	Action      string // required when the run is new
	Incident    string // stored when the run is new
	Destructive bool   // stored when the run is new
	State       ActionState
	// Result is stored when not nil (it replaces the previous one).
	Result *actions.Result
	Error  string
	// Enqueue adds notifications to the outbox in the same transaction, only
	// when the update applies (a slack.notify action "succeeds" by being
	// queued durably).
	Enqueue []Message
	// Entries are appended only when the update applies (RecordAction
	// appends its entries argument after these).
	Entries []Entry
}

// Batch is what processing one alert (or several) changes, applied by
// Apply in one transaction and one request, in this order: Entries, then
// each of Actions (with its own Entries when it applies), then Finish.
// It saves the engine a round trip per step: a dry-run alert with three
// actions is one Apply instead of seven calls.
type Batch struct {
	// Entries are appended unconditionally (playbook.matched, ...).
	Entries []Entry
	// Actions are applied like RecordAction, each only if allowed.
	Actions []ActionUpdate
	// Finish marks these alerts done, like FinishAlert.
	Finish []string
}

// BatchResult has one element per Batch.Actions: the run after the batch,
// and whether the update applied.
type BatchResult struct {
	Runs    []ActionRun
	Applied []bool
}

// Approvals are held actions waiting for a human.
type Approvals interface {
	// HoldAction moves the run to held (creating it if needed) and opens an
	// approval, with entries, in one transaction. Holding the same key again
	// returns the existing approval with created false and appends nothing.
	// A run already started or final cannot be held (ErrState).
	HoldAction(ctx context.Context, h Hold, entries ...Entry) (a Approval, created bool, err error)
	// DecideApproval closes a pending approval and moves its run on, with
	// entries, in one transaction: granted (or expired with Proceed) puts
	// the run back to planned so that ClaimAction starts it; denied or
	// expired skips it. decided is false, and nothing is appended, when the
	// approval was already decided (a second click).
	DecideApproval(ctx context.Context, id string, d Decision, entries ...Entry) (a Approval, decided bool, err error)
	GetApproval(ctx context.Context, id string) (Approval, error)
	// PendingApprovals lists pending approvals, earliest deadline first.
	PendingApprovals(ctx context.Context) ([]Approval, error)
}

// ApprovalState is where an approval is.
type ApprovalState string

// Approval states.
const (
	ApprovalStatePending ApprovalState = "pending"
	ApprovalStateGranted ApprovalState = "granted"
	ApprovalStateDenied  ApprovalState = "denied"
	ApprovalStateExpired ApprovalState = "expired"
)

// Hold asks for an approval.
type Hold struct {
	Key         ActionKey
	Action      string
	Incident    string
	Destructive bool
	Deadline    time.Time
	// Detail is kept with the approval (approvers, reason, on_timeout).
	Detail map[string]any
}

// Decision closes an approval.
type Decision struct {
	State ApprovalState // granted, denied or expired
	// Proceed: for expired, run the action anyway (on_timeout: proceed).
	Proceed bool
	By      string // "slack:U024BE7LH (jane)", "riposte" for a timeout
	Note    string
}

// Approval is one approval request.
type Approval struct {
	ID        string         `json:"id"`
	Key       ActionKey      `json:"key"`
	Action    string         `json:"action"`
	Incident  string         `json:"incident,omitempty"`
	Deadline  time.Time      `json:"deadline"`
	State     ApprovalState  `json:"state"`
	DecidedBy string         `json:"decided_by,omitempty"`
	Note      string         `json:"note,omitempty"`
	Detail    map[string]any `json:"detail,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	DecidedAt time.Time      `json:"decided_at,omitzero"`
}

// Outbox is the durable queue of notifications.
type Outbox interface {
	// Enqueue adds messages; one whose Key is already queued (or was
	// delivered) is not added again; one with a Fold may be held (see
	// Fold). Entries are appended in the same transaction when at least
	// one message is new.
	Enqueue(ctx context.Context, msgs []Message, entries ...Entry) ([]Enqueued, error)
	// ClaimOutbox leases up to max due messages, earliest first: pending
	// ones whose time has come, ones whose lease ran out, and ones a
	// previous process had leased (it crashed). Attempts counts leases.
	ClaimOutbox(ctx context.Context, max int, lease time.Duration) ([]OutboxItem, error)
	// AckOutbox marks a message delivered and appends entries, unless it
	// already was.
	AckOutbox(ctx context.Context, id int64, entries ...Entry) error
	// FailOutbox records a failed delivery: retry at retryAt (see Backoff),
	// or never when retryAt is zero (the message is dead).
	FailOutbox(ctx context.Context, id int64, retryAt time.Time, reason string, entries ...Entry) error
}

// Message is one notification to deliver.
type Message struct {
	// Key makes Enqueue idempotent: "slack.notify/<action key>".
	Key      string
	Kind     string // "slack", "pagerduty", "email", "webhook"
	Target   string // channel, routing key name, address, URL name
	Incident string
	Payload  []byte // JSON, whatever the notifier needs
	// NotBefore delays the first attempt; zero: now.
	NotBefore time.Time
	// Fold, when set, throttles the message with the others of its key.
	Fold *Fold
}

// Fold throttles messages about one thing (one notifier's messages about
// one incident): at most one of them goes out per Every. A message is due
// at once when the last one of its key was due Every ago or longer;
// otherwise it is held: it joins the message of its key that waits (its
// payload replaces that one's, whose Folded count grows by one), or, when
// none waits, it waits itself until Every after the last one. The state
// (when the next may go out, which one waits, how many joined it) is in the
// store, so that a restart or another replica keeps it.
type Fold struct {
	Key   string
	Every time.Duration
	// Held is journaled, in the same transaction, when the message is held;
	// its detail gains outbox_id (the message that will carry it), due and
	// folded (how many that one stands for so far). Zero Type: nothing.
	Held Entry
}

// FoldNS and FoldedNS are the key/value namespaces where the store keeps
// fold state: per fold key (FoldState), and per held message the count of
// messages it stands for.
const (
	FoldNS   = "outbox.fold"
	FoldedNS = "outbox.folded"
)

// FoldState is what the store keeps per fold key.
type FoldState struct {
	// Next is when the next message of the key may go out.
	Next time.Time `json:"next"`
	// Waiting is the message held until Next; 0: none.
	Waiting int64 `json:"waiting,omitempty"`
}

// Enqueued is what Enqueue did with one message.
type Enqueued struct {
	ID        int64
	Duplicate bool
	// Held: a throttled message that does not go out at once. Folded: it
	// joined the waiting message ID instead of being stored itself.
	Held, Folded bool
	Due          time.Time // when a held message's carrier is due
}

// OutboxState is where a message is.
type OutboxState string

// Outbox states.
const (
	OutboxPending OutboxState = "pending"
	OutboxLeased  OutboxState = "leased"
	OutboxDone    OutboxState = "done"
	OutboxDead    OutboxState = "dead"
)

// OutboxItem is one leased message.
type OutboxItem struct {
	ID int64
	Message
	State    OutboxState
	Attempts int
	// Folded, for a throttled message that was held (see Fold), is how
	// many messages it stands for, itself and those that joined it; its
	// payload is the latest's. 0 for any other message.
	Folded     int
	LeaseUntil time.Time
	LastError  string
	CreatedAt  time.Time
}

// Backoff is the delay before retry number attempt (1 for the first retry):
// base doubled per attempt, capped at max. FailOutbox callers use it unless
// the far end said when to come back (HTTP 429 Retry-After).
func Backoff(attempt int, base, max time.Duration) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := base
	for i := 1; i < attempt; i++ {
		d *= 2
		if d >= max || d <= 0 {
			return max
		}
	}
	if d > max {
		return max
	}
	return d
}

// Stats are counts for metrics.
type Stats struct {
	InboxPending     int64 `json:"inbox_pending"`
	InboxProcessing  int64 `json:"inbox_processing"`
	OutboxPending    int64 `json:"outbox_pending"`
	ApprovalsPending int64 `json:"approvals_pending"`
	JournalSeq       int64 `json:"journal_seq"`
}

var (
	_ Backend = (*Store)(nil)
	_ Nonces  = (*Store)(nil)
)
