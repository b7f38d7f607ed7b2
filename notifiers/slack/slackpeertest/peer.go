package slackpeertest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Message is a message the peer holds, as the last chat.postMessage or
// chat.update left it.
type Message struct {
	Channel   string
	TS        string
	ThreadTS  string // parent ts for a reply
	Broadcast bool   // reply also sent to the channel
	Text      string
	Blocks    slack.Blocks
	RawBlocks string
	Updates   int // chat.update calls applied
	// UnfurlLinks and UnfurlMedia are the form values sent ("" when absent).
	UnfurlLinks, UnfurlMedia string
}

// Call is one Web API call the peer answered.
type Call struct {
	Method string
	Form   url.Values // without the token
	Error  string     // Slack error code answered, "" for ok
	Status int        // HTTP status answered
}

// Failure is an answer queued for the next call of a method.
type Failure struct {
	Status     int    // HTTP status; 0 means 200
	RetryAfter int    // seconds, for the Retry-After header
	Error      string // Slack error code for a 200 {"ok":false}
}

// Response is one post to a response_url.
type Response struct {
	Channel, TS     string // the message the URL belongs to
	Text            string
	ResponseType    string
	ReplaceOriginal bool
	DeleteOriginal  bool
	Blocks          json.RawMessage
}

// Group is a user group.
type Group struct {
	ID, Handle string
	Users      []string
}

// Peer is a local Slack.
type Peer struct {
	BotToken string
	AppToken string

	srv *slacktest.Server

	mu        sync.Mutex
	channels  map[string]string // name → id
	messages  []*Message
	calls     []Call
	failures  map[string][]Failure
	groups    []Group
	responses []Response
	respURLs  map[string][2]string // id → channel, ts
	webhooks  map[string][][]byte  // path → bodies
	seq       int64
	changed   chan struct{}
	sockets   *socketHub
}

// New starts a peer that accepts botToken (xoxb-…) on the Web API and
// appToken (xapp-…) for Socket Mode. Channels "#ir" (C0IR) and "#alerts"
// (C0ALERTS) exist.
func New(botToken, appToken string) *Peer {
	p := &Peer{
		BotToken: botToken,
		AppToken: appToken,
		channels: map[string]string{"ir": "C0IR", "alerts": "C0ALERTS"},
		failures: map[string][]Failure{},
		respURLs: map[string][2]string{},
		webhooks: map[string][][]byte{},
		changed:  make(chan struct{}),
		seq:      time.Now().Unix() * 1_000_000,
	}
	p.sockets = newSocketHub(p)
	p.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", p.api("chat.postMessage", p.postMessage))
		c.Handle("/chat.update", p.api("chat.update", p.update))
		c.Handle("/usergroups.list", p.api("usergroups.list", p.usergroupsList))
		c.Handle("/usergroups.users.list", p.api("usergroups.users.list", p.usergroupsUsers))
		c.Handle("/apps.connections.open", p.appsConnectionsOpen)
		c.Handle("/response/", p.responseURL)
		c.Handle("/services/", p.incomingWebhook)
		c.Handle("/socket", p.sockets.serve)
	})
	p.srv.Start()
	return p
}

// Close stops the peer.
func (p *Peer) Close() {
	p.sockets.close()
	p.srv.Stop()
}

// APIURL is the Web API base URL (config api_url).
func (p *Peer) APIURL() string { return p.srv.GetAPIURL() }

// AddChannel makes a channel exist.
func (p *Peer) AddChannel(name, id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.channels[strings.TrimPrefix(name, "#")] = id
}

// AddGroup makes a user group exist, or replaces the group with the same id.
func (p *Peer) AddGroup(g Group) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.groups {
		if p.groups[i].ID == g.ID {
			p.groups[i] = g
			return
		}
	}
	p.groups = append(p.groups, g)
}

// FailNext queues f as the answer to the next call of method
// ("chat.postMessage", or "webhook" for incoming webhooks, "response" for
// response_url posts).
func (p *Peer) FailNext(method string, f Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures[method] = append(p.failures[method], f)
}

// WebhookURL mints an incoming webhook URL; the secret part is the last path
// element.
func (p *Peer) WebhookURL(secretPart string) string {
	path := "/services/T0RIPOSTE/B0RIPOSTE/" + secretPart
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.webhooks[path]; !ok {
		p.webhooks[path] = nil
	}
	return "http://" + p.srv.ServerAddr + path
}

// WebhookPosts returns the bodies posted to an incoming webhook URL.
func (p *Peer) WebhookPosts(webhookURL string) [][]byte {
	u, err := url.Parse(webhookURL)
	if err != nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.webhooks[u.Path])
}

// Messages returns copies of every message, in posting order.
func (p *Peer) Messages() []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Message, 0, len(p.messages))
	for _, m := range p.messages {
		out = append(out, *m)
	}
	return out
}

// TopLevel returns the messages that are not thread replies.
func (p *Peer) TopLevel() []Message {
	var out []Message
	for _, m := range p.Messages() {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// Replies returns the replies in the thread of (channel, ts).
func (p *Peer) Replies(channel, ts string) []Message {
	var out []Message
	for _, m := range p.Messages() {
		if m.Channel == channel && m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

// Message returns one message.
func (p *Peer) Message(channel, ts string) (Message, bool) {
	for _, m := range p.Messages() {
		if m.Channel == channel && m.TS == ts {
			return m, true
		}
	}
	return Message{}, false
}

// Calls returns the Web API calls of method ("" for all), in order.
func (p *Peer) Calls(method string) []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Call
	for _, c := range p.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Responses returns the posts to response URLs, in order.
func (p *Peer) Responses() []Response {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.responses)
}

// Changed returns a channel closed at the next change (message, call,
// response); for tests that wait on background work.
func (p *Peer) Changed() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changed
}

// WaitFor polls cond at every change until it holds or timeout passes.
func (p *Peer) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		ch := p.Changed()
		if cond() {
			return true
		}
		select {
		case <-ch:
		case <-deadline.C:
			return cond()
		}
	}
}

// notify wakes waiters; p.mu must be held.
func (p *Peer) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// ResponseURL mints a response_url for the message (channel, ts).
func (p *Peer) ResponseURL(channel, ts string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	id := strconv.FormatInt(p.seq, 36)
	p.respURLs[id] = [2]string{channel, ts}
	return "http://" + p.srv.ServerAddr + "/response/" + id
}

// --- Web API -------------------------------------------------------------------

type apiFunc func(form url.Values) (map[string]any, string)

// api wraps a Web API method: form parsing, token check, queued failures,
// call log.
func (p *Peer) api(method string, f apiFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, "read", http.StatusBadRequest)
			return
		}
		var form url.Values
		if ct := r.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
			form = url.Values{}
			var m map[string]any
			if json.Unmarshal(body, &m) == nil {
				for k, v := range m {
					if s, ok := v.(string); ok {
						form.Set(k, s)
					} else {
						b, _ := json.Marshal(v)
						form.Set(k, string(b))
					}
				}
			}
		} else if form, err = url.ParseQuery(string(body)); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if token == "" {
			token = form.Get("token")
		}
		form.Del("token")

		p.mu.Lock()
		var fail *Failure
		if q := p.failures[method]; len(q) > 0 {
			fail = &q[0]
			p.failures[method] = q[1:]
		}
		p.mu.Unlock()

		call := Call{Method: method, Form: form, Status: http.StatusOK}
		var resp map[string]any
		switch {
		case token == "":
			call.Error = "not_authed"
		case token != p.BotToken:
			call.Error = "invalid_auth"
		case fail != nil && fail.Status != 0 && fail.Status != http.StatusOK:
			call.Status = fail.Status
		case fail != nil && fail.Error != "":
			call.Error = fail.Error
		default:
			resp, call.Error = f(form)
		}
		p.mu.Lock()
		p.calls = append(p.calls, call)
		p.notify()
		p.mu.Unlock()

		if call.Status != http.StatusOK {
			if fail.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(fail.RetryAfter))
			}
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(call.Status)
			_, _ = io.WriteString(w, "<html><body>"+http.StatusText(call.Status)+"</body></html>")
			return
		}
		if call.Error != "" {
			resp = map[string]any{"ok": false, "error": call.Error}
		} else {
			if resp == nil {
				resp = map[string]any{}
			}
			resp["ok"] = true
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(resp)
	}
}

// channelID resolves "#name", "name" or an id; ids must be known.
func (p *Peer) channelID(ch string) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.channels[strings.TrimPrefix(ch, "#")]; ok {
		return id, true
	}
	for _, id := range p.channels {
		if id == ch {
			return id, true
		}
	}
	return "", false
}

func (p *Peer) postMessage(form url.Values) (map[string]any, string) {
	ch, ok := p.channelID(form.Get("channel"))
	if !ok {
		return nil, "channel_not_found"
	}
	text, rawBlocks := form.Get("text"), form.Get("blocks")
	if text == "" && rawBlocks == "" && form.Get("attachments") == "" {
		return nil, "no_text"
	}
	if utf8.RuneCountInString(text) > 40000 {
		return nil, "msg_too_long"
	}
	m := &Message{Channel: ch, ThreadTS: form.Get("thread_ts"), Text: text, RawBlocks: rawBlocks,
		Broadcast: form.Get("reply_broadcast") == "true", UnfurlLinks: form.Get("unfurl_links"), UnfurlMedia: form.Get("unfurl_media")}
	if rawBlocks != "" {
		if err := ValidateBlocks(rawBlocks); err != nil {
			return nil, "invalid_blocks"
		}
		_ = json.Unmarshal([]byte(rawBlocks), &m.Blocks)
	}
	p.mu.Lock()
	p.seq++
	m.TS = fmt.Sprintf("%d.%06d", p.seq/1_000_000, p.seq%1_000_000)
	p.messages = append(p.messages, m)
	p.mu.Unlock()
	return map[string]any{"channel": ch, "ts": m.TS, "message": map[string]any{"text": text, "ts": m.TS, "type": "message"}}, ""
}

func (p *Peer) update(form url.Values) (map[string]any, string) {
	ch, ts := form.Get("channel"), form.Get("ts")
	if ts == "" {
		return nil, "message_not_found"
	}
	rawBlocks := form.Get("blocks")
	var blocks slack.Blocks
	if rawBlocks != "" {
		if err := ValidateBlocks(rawBlocks); err != nil {
			return nil, "invalid_blocks"
		}
		_ = json.Unmarshal([]byte(rawBlocks), &blocks)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	known := false
	for _, id := range p.channels {
		known = known || id == ch
	}
	if !known {
		return nil, "channel_not_found"
	}
	for _, m := range p.messages {
		if m.Channel == ch && m.TS == ts {
			if t := form.Get("text"); t != "" {
				m.Text = t
			}
			if rawBlocks != "" {
				m.RawBlocks, m.Blocks = rawBlocks, blocks
			}
			m.Updates++
			return map[string]any{"channel": ch, "ts": ts, "text": m.Text}, ""
		}
	}
	return nil, "message_not_found"
}

// DeleteMessage removes a message, as a user deleting it would.
func (p *Peer) DeleteMessage(channel, ts string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.messages = slices.DeleteFunc(p.messages, func(m *Message) bool { return m.Channel == channel && m.TS == ts })
	p.notify()
}

func (p *Peer) usergroupsList(url.Values) (map[string]any, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var list []map[string]any
	for _, g := range p.groups {
		list = append(list, map[string]any{"id": g.ID, "handle": g.Handle, "name": g.Handle, "is_usergroup": true})
	}
	return map[string]any{"usergroups": list}, ""
}

func (p *Peer) usergroupsUsers(form url.Values) (map[string]any, string) {
	id := form.Get("usergroup")
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range p.groups {
		if g.ID == id {
			return map[string]any{"users": slices.Clone(g.Users)}, ""
		}
	}
	return nil, "no_such_subteam"
}

// --- response_url and incoming webhooks ---------------------------------------

func (p *Peer) responseURL(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/response/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p.mu.Lock()
	defer p.mu.Unlock()
	target, ok := p.respURLs[id]
	if !ok || r.Method != http.MethodPost {
		http.Error(w, "invalid_response_url", http.StatusNotFound)
		return
	}
	var fail *Failure
	if q := p.failures["response"]; len(q) > 0 {
		fail = &q[0]
		p.failures["response"] = q[1:]
	}
	if fail != nil && fail.Status != 0 {
		w.WriteHeader(fail.Status)
		return
	}
	var msg struct {
		Text            string          `json:"text"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	p.responses = append(p.responses, Response{Channel: target[0], TS: target[1], Text: msg.Text, ResponseType: msg.ResponseType,
		ReplaceOriginal: msg.ReplaceOriginal, DeleteOriginal: msg.DeleteOriginal, Blocks: msg.Blocks})
	if msg.ReplaceOriginal {
		for _, m := range p.messages {
			if m.Channel == target[0] && m.TS == target[1] {
				m.Text = msg.Text
				m.RawBlocks = string(msg.Blocks)
				m.Blocks = slack.Blocks{}
				_ = json.Unmarshal(msg.Blocks, &m.Blocks)
				m.Updates++
			}
		}
	}
	p.notify()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (p *Peer) incomingWebhook(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.webhooks[r.URL.Path]; !ok || r.Method != http.MethodPost {
		http.Error(w, "no_service", http.StatusNotFound)
		return
	}
	if q := p.failures["webhook"]; len(q) > 0 {
		f := q[0]
		p.failures["webhook"] = q[1:]
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		text := f.Error
		if text == "" {
			text = http.StatusText(f.Status)
		}
		http.Error(w, text, f.Status)
		return
	}
	var msg struct {
		Text   string          `json:"text"`
		Blocks json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if msg.Text == "" && len(msg.Blocks) == 0 {
		http.Error(w, "no_text", http.StatusBadRequest)
		return
	}
	if len(msg.Blocks) > 0 {
		if err := ValidateBlocks(string(msg.Blocks)); err != nil {
			http.Error(w, "invalid_blocks", http.StatusBadRequest)
			return
		}
	}
	p.webhooks[r.URL.Path] = append(p.webhooks[r.URL.Path], body)
	p.notify()
	w.Header().Set("Content-Type", "text/html")
	_, _ = io.WriteString(w, "ok")
}

// --- signing ----------------------------------------------------------------------

// Sign returns the X-Slack-Signature Slack sends for body at timestamp ts:
// "v0=" + hex(HMAC-SHA256(secret, "v0:" + ts + ":" + body)).
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%d:", ts)
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignedRequest builds the POST Slack sends to an app's request URL: the
// form body, its Content-Type and the two signature headers.
func SignedRequest(secret, target string, form url.Values, at time.Time) *http.Request {
	body := []byte(form.Encode())
	r, err := http.NewRequest(http.MethodPost, target, strings.NewReader(string(body)))
	if err != nil {
		panic(err)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("X-Slack-Request-Timestamp", strconv.FormatInt(at.Unix(), 10))
	r.Header.Set("X-Slack-Signature", Sign(secret, at.Unix(), body))
	return r
}

// InteractionForm is the form Slack posts for an interaction.
func InteractionForm(cb slack.InteractionCallback) url.Values {
	b, err := json.Marshal(&cb)
	if err != nil {
		panic(err)
	}
	return url.Values{"payload": {string(b)}}
}

// CommandForm is the form Slack posts for a slash command.
func (p *Peer) CommandForm(user slack.User, channel, text string) url.Values {
	return url.Values{
		"token":        {"deprecated-verification-token"},
		"team_id":      {"T0RIPOSTE"},
		"team_domain":  {"riposte"},
		"channel_id":   {channel},
		"channel_name": {"ir"},
		"user_id":      {user.ID},
		"user_name":    {user.Name},
		"command":      {"/riposte"},
		"text":         {text},
		"api_app_id":   {"A0RIPOSTE"},
		"response_url": {p.ResponseURL(channel, "")},
		"trigger_id":   {"13345224609.738474920.8088930838d88f008e0"},
	}
}

// ErrNoButton is returned by Press when the message has no such button.
var ErrNoButton = errors.New("no such button on the message")

// Press builds the block_actions payload Slack sends when user presses the
// button with actionID on message m: the value is the one on the message,
// as in Slack, and response_url belongs to the message.
func (p *Peer) Press(m Message, actionID string, user slack.User) (slack.InteractionCallback, error) {
	var btn *slack.ButtonBlockElement
	var blockID string
	for _, b := range m.Blocks.BlockSet {
		ab, ok := b.(*slack.ActionBlock)
		if !ok || ab.Elements == nil {
			continue
		}
		for _, e := range ab.Elements.ElementSet {
			if be, ok := e.(*slack.ButtonBlockElement); ok && be.ActionID == actionID {
				btn, blockID = be, ab.BlockID
			}
		}
	}
	if btn == nil {
		return slack.InteractionCallback{}, fmt.Errorf("%w: %s", ErrNoButton, actionID)
	}
	now := time.Now()
	actionTS := fmt.Sprintf("%d.%06d", now.Unix(), now.Nanosecond()/1000)
	cb := slack.InteractionCallback{
		Type:        slack.InteractionTypeBlockActions,
		Token:       "deprecated-verification-token",
		TriggerID:   "13345224609.738474920.8088930838d88f008e0",
		ResponseURL: p.ResponseURL(m.Channel, m.TS),
		APIAppID:    "A0RIPOSTE",
		Team:        slack.Team{ID: "T0RIPOSTE", Domain: "riposte"},
		User:        user,
		Channel:     slack.Channel{GroupConversation: slack.GroupConversation{Conversation: slack.Conversation{ID: m.Channel}, Name: "ir"}},
		Container:   slack.Container{Type: "message", MessageTs: m.TS, ChannelID: m.Channel},
	}
	cb.Message.Type = "message"
	cb.Message.Timestamp = m.TS
	cb.Message.Text = m.Text
	cb.Message.Blocks = m.Blocks
	cb.ActionCallback.BlockActions = []*slack.BlockAction{{
		ActionID: actionID, BlockID: blockID, Type: "button", Value: btn.Value, ActionTs: actionTS,
		Text: slack.TextBlockObject{Type: slack.PlainTextType, Text: btn.Text.Text},
	}}
	return cb, nil
}
