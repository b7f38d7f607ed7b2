package slack

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
)

// card is what the incident message shows. It is kept (as Thread.State) so
// that any later update can render the whole message again.
type card struct {
	Incident string `json:"incident"`
	// Headline is the playbook's text; "" means the default headline.
	Headline  string          `json:"headline,omitempty"`
	HasAlert  bool            `json:"has_alert"`
	Rule      string          `json:"rule,omitempty"`
	Priority  alert.Priority  `json:"priority"`
	Host      string          `json:"host,omitempty"`
	Time      time.Time       `json:"time"`
	Container alert.Container `json:"container"`
	// Target is the container reference the buttons act on (id, else the
	// request's container); "" means no container buttons.
	Target string      `json:"target,omitempty"`
	Fields [][2]string `json:"fields,omitempty"`
	// AlertIDs are the distinct alerts reported for the incident (latest
	// maxAlertIDs), Alerts counts all of them.
	AlertIDs []string       `json:"alert_ids,omitempty"`
	Alerts   int            `json:"alerts"`
	Steps    []actions.Step `json:"steps,omitempty"`
	// Delivered are the request keys already delivered, so that a retried
	// notify neither posts nor replies twice.
	Delivered []string `json:"delivered,omitempty"`
	Buttons   bool     `json:"buttons"`
	// Messages show the card: one per channel the incident was notified
	// to, the first one where approvals go by default.
	Messages []msgRef `json:"messages,omitempty"`
}

// msgRef locates one message of the card.
type msgRef struct {
	Requested string `json:"requested,omitempty"` // channel as the playbook named it ("#ir")
	Channel   string `json:"channel"`             // id chat.postMessage returned
	TS        string `json:"ts"`
}

// message returns the index of the message in channel (a name as the
// playbook wrote it, or an id), -1 when none; "" means the first message.
func (c card) message(channel string) int {
	if channel == "" && len(c.Messages) > 0 {
		return 0
	}
	for i, m := range c.Messages {
		if m.Requested == channel || m.Channel == channel {
			return i
		}
	}
	return -1
}

const (
	maxAlertIDs   = 50
	maxDelivered  = 200
	maxSteps      = 200
	shownSteps    = 12
	maxFieldRunes = 300
	maxHeader     = 150
	maxSection    = 3000
)

// keyFields are the Falco output fields a responder wants first, in order.
var keyFields = []string{
	"user.name", "user.loginuid", "proc.name", "proc.cmdline", "proc.pname", "proc.exepath",
	"fd.name", "fd.rip", "fd.rport", "evt.type", "k8s.ns.name", "k8s.pod.name",
}

func newCard(req actions.Request, buttons bool) card {
	c := card{Incident: req.Incident, Buttons: buttons}
	c.absorbAlert(req)
	c.Headline = req.Params.String("text", "")
	return c
}

// absorbAlert takes the alert of req into the card; it reports whether the
// alert is one the card had not seen.
func (c *card) absorbAlert(req actions.Request) bool {
	a := req.Alert
	if a.Rule == "" {
		if c.Target == "" && req.Container != "" && req.Container != alert.HostContainerID {
			c.Target = req.Container
		}
		return false
	}
	id := a.ID
	if id != "" && slices.Contains(c.AlertIDs, id) {
		return false
	}
	first := !c.HasAlert
	c.Alerts++
	if id != "" {
		c.AlertIDs = append(c.AlertIDs, id)
		if len(c.AlertIDs) > maxAlertIDs {
			c.AlertIDs = c.AlertIDs[len(c.AlertIDs)-maxAlertIDs:]
		}
	}
	if !first && a.Priority <= c.Priority {
		// Keep the card about the most severe alert; later ones are
		// replies in the thread.
		return true
	}
	c.HasAlert = true
	c.Rule = a.Rule
	c.Priority = a.Priority
	c.Host = a.Hostname
	c.Time = a.Time
	c.Container = a.Container()
	c.Target = ""
	if a.InContainer() {
		c.Target = c.Container.ID
	} else if req.Container != "" && req.Container != alert.HostContainerID && c.Container.ID != alert.HostContainerID {
		c.Target = req.Container
	}
	c.Fields = alertFields(a)
	return true
}

func alertFields(a alert.Alert) [][2]string {
	var out [][2]string
	for _, k := range keyFields {
		if v := a.Field(k); v != "" && v != "<NA>" {
			out = append(out, [2]string{k, delivery.Truncate(v, maxFieldRunes)})
		}
	}
	return out
}

// headline is the playbook's text, or rule, container and host.
func (c card) headline() string {
	if c.Headline != "" {
		return c.Headline
	}
	if !c.HasAlert {
		if c.Target != "" {
			return "riposte: container " + c.Target
		}
		return "riposte notification"
	}
	h := c.Rule
	if n := c.containerName(); n != "" {
		h += " in " + n
	}
	if c.Host != "" {
		h += " on " + c.Host
	}
	return h
}

func (c card) containerName() string {
	switch {
	case c.Container.Name != "" && c.Container.Name != "<NA>":
		return c.Container.Name
	case c.Container.ID == alert.HostContainerID:
		return ""
	case c.Container.ID != "":
		return c.Container.ID
	}
	return c.Target
}

// addSteps merges steps into the card, oldest first, and returns those that
// were new.
func (c *card) addSteps(steps []actions.Step) []actions.Step {
	var added []actions.Step
	for _, s := range steps {
		if slices.ContainsFunc(c.Steps, func(o actions.Step) bool { return sameStep(o, s) }) {
			continue
		}
		c.Steps = append(c.Steps, s)
		added = append(added, s)
	}
	slices.SortStableFunc(c.Steps, func(a, b actions.Step) int { return a.Time.Compare(b.Time) })
	if len(c.Steps) > maxSteps {
		c.Steps = c.Steps[len(c.Steps)-maxSteps:]
	}
	return added
}

func sameStep(a, b actions.Step) bool {
	return a.Action == b.Action && a.Status == b.Status && a.Actor == b.Actor && a.Note == b.Note && a.Time.Equal(b.Time)
}

func (c *card) delivered(key string) bool {
	return key != "" && slices.Contains(c.Delivered, key)
}

func (c *card) markDelivered(key string) {
	if key == "" || c.delivered(key) {
		return
	}
	c.Delivered = append(c.Delivered, key)
	if len(c.Delivered) > maxDelivered {
		c.Delivered = c.Delivered[len(c.Delivered)-maxDelivered:]
	}
}

func (c card) encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		// Only strings, times and numbers: cannot fail.
		panic(err)
	}
	return b
}

func decodeCard(b []byte) (card, error) {
	var c card
	if len(b) == 0 {
		return c, fmt.Errorf("decode slack message state: empty")
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode slack message state: %w", err)
	}
	return c, nil
}

// acknowledgedBy returns who acknowledged the incident, "" if nobody.
func (c card) acknowledgedBy() string {
	for i := len(c.Steps) - 1; i >= 0; i-- {
		if s := c.Steps[i]; s.Action == ActionAcknowledge && s.Status == StatusSucceeded {
			return actorName(s.Actor)
		}
	}
	return ""
}

// --- rendering ---------------------------------------------------------------

// escape makes text safe for Slack mrkdwn: &, < and > are the control
// characters; without them no link or mention can be formed from alert text.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// code shows a value verbatim: a code span when it has no backtick, else
// escaped text.
func code(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if strings.Contains(s, "`") {
		return escape(s)
	}
	return "`" + escape(s) + "`"
}

func priorityMark(p alert.Priority) string {
	switch {
	case p >= alert.PriorityCritical:
		return "🔴"
	case p == alert.PriorityError:
		return "🟠"
	case p == alert.PriorityWarning:
		return "🟡"
	}
	return "🔵"
}

func statusMark(status actions.Status) string {
	switch status {
	case StatusSucceeded:
		return "✅"
	case "failed":
		return "❌"
	case "skipped_dry_run":
		return "💤"
	case "blocked_protected":
		return "🛡️"
	case "held_for_approval":
		return "⏳"
	case "denied":
		return "🚫"
	}
	return "•"
}

func statusWords(status actions.Status) string {
	switch status {
	case StatusSucceeded, "":
		return ""
	case "skipped_dry_run":
		return "dry run"
	case "blocked_protected":
		return "blocked: protected container"
	case "held_for_approval":
		return "waiting for approval"
	}
	return strings.ReplaceAll(string(status), "_", " ")
}

// actorName turns "slack:U123 (alice)" into "alice" and "playbook:x" into
// "playbook x".
func actorName(actor string) string {
	kind, rest, ok := strings.Cut(actor, ":")
	if !ok {
		return actor
	}
	if kind == "slack" {
		if i := strings.Index(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
			return rest[i+2 : len(rest)-1]
		}
		return rest
	}
	return kind + " " + rest
}

func stepLine(s actions.Step) string {
	var b strings.Builder
	b.WriteString(statusMark(s.Status))
	b.WriteString(" ")
	if !s.Time.IsZero() {
		b.WriteString(s.Time.UTC().Format("15:04:05") + " ")
	}
	b.WriteString(escape(s.Action))
	if w := statusWords(s.Status); w != "" {
		b.WriteString(" (" + escape(w) + ")")
	}
	if s.Actor != "" {
		b.WriteString(" by " + escape(actorName(s.Actor)))
	}
	if s.Note != "" {
		b.WriteString(" — " + escape(delivery.Truncate(strings.ReplaceAll(s.Note, "\n", " "), 200)))
	}
	return b.String()
}

func (c card) fallbackText() string {
	if !c.HasAlert {
		return c.headline()
	}
	return fmt.Sprintf("[%s] %s", c.Priority, c.headline())
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, true, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// blocks renders the whole incident message.
func (c card) blocks() []slack.Block {
	var bl []slack.Block
	title := c.headline()
	if c.HasAlert {
		title = fmt.Sprintf("%s %s · %s", priorityMark(c.Priority), c.Priority, c.Rule)
	}
	bl = append(bl, slack.NewHeaderBlock(plain(delivery.Truncate(title, maxHeader))))
	bl = append(bl, slack.NewSectionBlock(mrkdwn(delivery.Truncate(escape(c.headline()), maxSection)), nil, nil))

	var fields []*slack.TextBlockObject
	if n := c.containerName(); n != "" {
		v := escape(n)
		if c.Container.ID != "" && c.Container.ID != n {
			v += "\n" + code(c.Container.ID)
		}
		fields = append(fields, mrkdwn("*Container*\n"+v))
	}
	if img := c.Container.Image; img != "" {
		if c.Container.Tag != "" {
			img += ":" + c.Container.Tag
		}
		fields = append(fields, mrkdwn("*Image*\n"+escape(delivery.Truncate(img, 200))))
	}
	if c.Host != "" {
		fields = append(fields, mrkdwn("*Host*\n"+escape(c.Host)))
	}
	if c.HasAlert {
		fields = append(fields, mrkdwn("*Priority*\n"+c.Priority.String()))
		fields = append(fields, mrkdwn("*Time*\n"+c.Time.UTC().Format("15:04:05 UTC, 2 Jan")))
	}
	if c.Alerts > 1 {
		fields = append(fields, mrkdwn(fmt.Sprintf("*Alerts*\n%d", c.Alerts)))
	}
	if len(fields) > 0 {
		bl = append(bl, slack.NewSectionBlock(nil, fields, nil))
	}

	if len(c.Fields) > 0 {
		lines := []string{"*Details*"}
		for _, f := range c.Fields {
			lines = append(lines, "• "+escape(f[0])+": "+code(f[1]))
		}
		bl = append(bl, slack.NewSectionBlock(mrkdwn(fitLines(lines, maxSection)), nil, nil))
	}

	lines := []string{"*What riposte did*"}
	steps := c.Steps
	if len(steps) > shownSteps {
		lines = append(lines, fmt.Sprintf("_%d earlier steps in the thread and the journal_", len(steps)-shownSteps))
		steps = steps[len(steps)-shownSteps:]
	}
	for _, s := range steps {
		lines = append(lines, stepLine(s))
	}
	if len(c.Steps) == 0 {
		lines = append(lines, "Nothing yet.")
	}
	bl = append(bl, slack.NewSectionBlock(mrkdwn(fitLines(lines, maxSection)), nil, nil))

	ctx := []string{}
	if c.Incident != "" {
		ctx = append(ctx, "Incident "+code(c.Incident))
	}
	if len(c.AlertIDs) > 0 {
		ctx = append(ctx, "Alert "+code(c.AlertIDs[len(c.AlertIDs)-1]))
	}
	if who := c.acknowledgedBy(); who != "" {
		ctx = append(ctx, "Acknowledged by "+escape(who))
	}
	if len(ctx) > 0 {
		bl = append(bl, slack.NewContextBlock("riposte_context", mrkdwn(strings.Join(ctx, " · "))))
	}
	if c.Buttons && c.Incident != "" {
		bl = append(bl, c.actionBlock())
	}
	return bl
}

// fitLines joins lines and drops whole lines from the end so that the text
// stays within max bytes.
func fitLines(lines []string, max int) string {
	for n := len(lines); n > 0; n-- {
		s := strings.Join(lines[:n], "\n")
		if len(s) <= max {
			return s
		}
	}
	return delivery.Truncate(lines[0], max/4)
}

// Block and action ids. Action ids name the button; the value carries the
// incident and the container (never alert text).
const (
	actionsBlockID  = "riposte_actions"
	approvalBlockID = "riposte_approval"
	actionIDPrefix  = "riposte:"
)

// button describes one response button.
type button struct {
	id     string // action_id suffix
	label  string
	action string // the riposte action it runs
	// restricted buttons change the container's containment; only approvers
	// may press them.
	restricted bool
	container  bool // needs a container
}

// buttons, in the order they are shown.
var buttons = []button{
	{id: "pause", label: "Pause", action: "container.pause", restricted: true, container: true},
	{id: "quarantine", label: "Quarantine", action: "container.quarantine", restricted: true, container: true},
	{id: "kill", label: "Kill", action: "container.kill", restricted: true, container: true},
	{id: "snapshot", label: "Snapshot", action: "container.snapshot", container: true},
	{id: "release", label: "Release", action: "container.release", restricted: true, container: true},
	{id: "ack", label: "Acknowledge", action: ActionAcknowledge},
	{id: "mute", label: "Mute 1h", action: ActionMute, restricted: true},
}

func buttonByID(id string) (button, bool) {
	for _, b := range buttons {
		if b.id == id {
			return b, true
		}
	}
	return button{}, false
}

// buttonValue is the value of a response button.
type buttonValue struct {
	Incident  string `json:"incident"`
	Container string `json:"container,omitempty"`
}

func (c card) actionBlock() *slack.ActionBlock {
	withContainer, _ := json.Marshal(buttonValue{Incident: c.Incident, Container: c.Target})
	incidentOnly, _ := json.Marshal(buttonValue{Incident: c.Incident})
	var els []slack.BlockElement
	for _, b := range buttons {
		if b.container && c.Target == "" {
			continue
		}
		val := incidentOnly
		if b.container {
			val = withContainer
		}
		e := slack.NewButtonBlockElement(actionIDPrefix+b.id, string(val), plain(b.label))
		if b.id == "kill" {
			name := c.containerName()
			e = e.WithStyle(slack.StyleDanger).WithConfirm(
				slack.NewConfirmationBlockObject(
					plain("Kill the container?"),
					mrkdwn(delivery.Truncate("Kill *"+escape(name)+"*? Its processes stop now and memory state is lost. Pause or Quarantine keep the evidence.", 300)),
					plain("Kill"), plain("Cancel")).WithStyle(slack.StyleDanger))
		}
		if b.id == "mute" {
			where := "on the host"
			if name := c.containerName(); name != "" {
				where = "in *" + escape(name) + "*"
			}
			e = e.WithConfirm(slack.NewConfirmationBlockObject(
				plain("Mute this incident for 1 hour?"),
				mrkdwn(delivery.Truncate("Alerts of *"+escape(c.Rule)+"* "+where+" stop notifying for an hour. They are still journaled and containment still runs. The silence is recorded with your name.", 300)),
				plain("Mute 1h"), plain("Cancel")))
		}
		els = append(els, e)
	}
	return slack.NewActionBlock(actionsBlockID, els...)
}

// replyForAlert is the thread reply for a further alert of the incident.
func replyForAlert(a alert.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s Again at %s: *%s* (%s)", priorityMark(a.Priority), a.Time.UTC().Format("15:04:05 UTC"), escape(a.Rule), a.Priority)
	for _, f := range alertFields(a) {
		if f[0] == "proc.cmdline" || f[0] == "fd.name" {
			b.WriteString("\n• " + escape(f[0]) + ": " + code(f[1]))
		}
	}
	return b.String()
}

// replyForFold is the thread reply of a throttled update: how many alerts
// it stands for and the latest of them, with its output.
func replyForFold(f actions.Fold, a alert.Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%s*. Latest at %s: %s *%s* (%s)", escape(f.Summary()), a.Time.UTC().Format("15:04:05 UTC"),
		priorityMark(a.Priority), escape(a.Rule), a.Priority)
	if out := strings.TrimSpace(a.Output); out != "" {
		b.WriteString("\n> " + escape(delivery.Truncate(out, maxSection/3)))
	}
	return b.String()
}
