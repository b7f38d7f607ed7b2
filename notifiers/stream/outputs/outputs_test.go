package outputs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/stream"
	"github.com/riposte-sec/riposte/notifiers/syslog/syslogtest"
)

func decode(t *testing.T, text string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// An alert and the journal entries it causes reach syslog, the JSON-lines
// file and a program's stdin, through the real store's outbox.
func TestAlertAndJournalReachEveryOutput(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	peer, err := syslogtest.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	stdin := filepath.Join(dir, "program-stdin")
	jsonl := filepath.Join(dir, "log", "riposte.jsonl")
	cfg, err := decode(t, fmt.Sprintf(`
outputs:
  - name: siem
    syslog: {network: tcp, address: %q, facility: authpriv}
  - name: archive
    kinds: [journal]
    types: ["action.*", "incident.*"]
    file: {path: %q, max_size: 1MiB, max_files: 3}
  - name: oncall
    kinds: [alert]
    min_priority: critical
    program: {argv: ["tee", "-a", %q], timeout: 10s, env: []}
`, peer.Addr(), jsonl, stdin))
	if err != nil {
		t.Fatal(err)
	}
	set, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()

	st, err := store.Open(store.PathIn(filepath.Join(dir, "data")), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	a := alert.Alert{
		ID: "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41", Time: time.Date(2026, 11, 20, 9, 14, 3, 0, time.UTC),
		Rule: "Terminal shell in container", Priority: alert.PriorityCritical,
		Output:       "Shell ($(touch /tmp/riposte-pwned); `id` | & \\ \" ') in payments-api",
		OutputFields: map[string]any{"container.id": "3f9a1c2b7d4e", "container.name": "payments-api"},
		Tags:         []string{"container"}, Hostname: "node-3",
	}
	// What the engine does: accept, open the incident, act, journal.
	if _, err := st.Accept(ctx, []alert.Alert{a}); err != nil {
		t.Fatal(err)
	}
	inc, _, err := st.Incident(ctx, "3f9a1c2b7d4e", a.Rule, a.Time)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx,
		store.Entry{Type: store.PlaybookMatched, AlertID: a.ID, Playbook: "contain", Actor: "riposte"},
		store.Entry{Type: store.ActionSucceeded, AlertID: a.ID, Playbook: "contain", Action: "container.pause", Actor: "riposte"},
	); err != nil {
		t.Fatal(err)
	}
	entries, err := st.Entries(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := stream.FromAlert(a, inc)
	if err != nil {
		t.Fatal(err)
	}
	records := []stream.Record{rec}
	for _, e := range entries {
		r, err := stream.FromEntry(e, &a, inc)
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, r)
	}
	enqueue := func() []store.Enqueued {
		var all []store.Enqueued
		for _, r := range records {
			msgs, err := set.Messages(r)
			if err != nil {
				t.Fatal(err)
			}
			out, err := st.Enqueue(ctx, msgs)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, out...)
		}
		return all
	}
	// siem: 5 records; archive: incident.opened, action.succeeded; oncall: the alert.
	if q := enqueue(); len(q) != 5+2+1 {
		t.Fatalf("%d messages queued, want 8", len(q))
	}
	for _, e := range enqueue() {
		if !e.Duplicate {
			t.Fatal("the same record queued twice")
		}
	}

	// What the outbox worker does.
	items, err := st.ClaimOutbox(ctx, 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 8 {
		t.Fatalf("claimed %d", len(items))
	}
	for _, it := range items {
		detail, err := set.Deliver(ctx, it.Message)
		if err != nil {
			t.Fatalf("deliver %s: %v", it.Key, err)
		}
		if detail[stream.DeliveryDetailKey] != it.Target || detail["record"] == nil {
			t.Errorf("detail %v", detail)
		}
		if it.Target == "oncall" && detail["exit_code"] != 0 {
			t.Errorf("program detail %v", detail)
		}
		if err := st.AckOutbox(ctx, it.ID, store.Entry{Type: store.NotificationSent, AlertID: a.ID, Actor: "riposte", Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	// The delivery reports are journaled, and never streamed (no loop).
	after, err := st.Entries(ctx, store.Filter{AfterSeq: entries[len(entries)-1].Seq})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 8 {
		t.Fatalf("%d delivery entries", len(after))
	}
	for _, e := range after {
		r, err := stream.FromEntry(e, &a, inc)
		if err != nil {
			t.Fatal(err)
		}
		if msgs, err := set.Messages(r); err != nil || len(msgs) != 0 {
			t.Fatalf("delivery report streamed again: %v %v", msgs, err)
		}
	}

	// syslog: every record, in order.
	for _, r := range records {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := peer.Next(wctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		sd, _ := m.Element("riposte@32473")
		if m.MsgID != r.Type || sd.Map()["id"] != r.ID || sd.Map()["incident"] != inc || m.Facility != 10 || string(m.Msg) != string(r.JSON) {
			t.Errorf("syslog message %s %v, want record %s", m.MsgID, sd.Map(), r.Key())
		}
	}
	// file: the two journal entries it takes.
	b, err := os.ReadFile(jsonl)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e struct {
			Type string `json:"type"`
			Hash string `json:"hash"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Hash == "" {
			t.Fatalf("file line %q: %v", sc.Text(), err)
		}
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "incident.opened,action.succeeded" {
		t.Errorf("file has %v", types)
	}
	// program: the alert, byte for byte.
	got, err := os.ReadFile(stdin)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(rec.JSON)+"\n" {
		t.Errorf("program stdin = %q", got)
	}
	if _, err := os.Stat("/tmp/riposte-pwned"); err == nil {
		t.Error("alert text was executed")
	}
}

func TestDeliverErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, err := decode(t, fmt.Sprintf("outputs:\n  - name: down\n    syslog: {network: tcp, address: \"127.0.0.1:1\", timeout: 1s}\n  - name: a\n    file: {path: %q}\n", filepath.Join(dir, "a.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	set, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	r, err := stream.FromAlert(alert.Alert{ID: "x", Rule: "r", Time: time.Now(), Priority: alert.PriorityError}, "")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := set.Messages(r)
	if err != nil || len(msgs) != 2 || msgs[0].Key != "stream/down/alert/x" || msgs[1].Target != "a" || msgs[0].Kind != MessageKind {
		t.Fatalf("messages %+v %v", msgs, err)
	}
	tests := []struct {
		name      string
		msg       store.Message
		retryable bool
		want      string
	}{
		{"peer down", msgs[0], true, "write syslog record alert/x: dial tcp 127.0.0.1:1"},
		{"unknown output", store.Message{Key: "k", Kind: MessageKind, Target: "gone", Payload: msgs[1].Payload}, false, `deliver k: no stream output named "gone"`},
		{"other kind", store.Message{Key: "k", Kind: "slack", Target: "a"}, false, `deliver k: not a stream message (kind "slack")`},
		{"bad payload", store.Message{Key: "k", Kind: MessageKind, Target: "a", Payload: []byte(`{"kind":"metric"}`)}, false, "deliver k: decode record"},
		{"invalid record", store.Message{Key: "k", Kind: MessageKind, Target: "a", Payload: []byte(`{"kind":"alert","id":"x","type":"alert","json":null}`)}, false, "write record alert/x to file: invalid record: json is not an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := set.Deliver(context.Background(), tt.msg)
			if err == nil || actions.IsRetryable(err) != tt.retryable || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Deliver: %v (retryable %v), want %q retryable %v", err, actions.IsRetryable(err), tt.want, tt.retryable)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"empty", "outputs: []\n", ""},
		{"no name", "outputs:\n  - file: {path: /tmp/x}\n", "stream: outputs[0]: name: missing"},
		{"bad name", "outputs:\n  - name: My Out\n    file: {path: /tmp/x}\n", "stream: outputs[0] (My Out): name: want lowercase letters, digits, - and _"},
		{"twice", "outputs:\n  - name: a\n    file: {path: /tmp/x}\n  - name: a\n    file: {path: /tmp/y}\n", "stream: outputs[1] (a): name: used twice"},
		{"none", "outputs:\n  - name: a\n", "stream: outputs[0] (a): set exactly one of syslog, file and program"},
		{"two", "outputs:\n  - name: a\n    file: {path: /tmp/x}\n    program: {argv: [true]}\n", "stream: outputs[0] (a): set exactly one of syslog, file and program"},
		{"same file", "outputs:\n  - name: a\n    file: {path: /tmp/x}\n  - name: b\n    file: {path: /tmp/x}\n", "stream: outputs[1] (b): file config: path: /tmp/x is also written by output a"},
		{"filter", "outputs:\n  - name: a\n    types: [action.sucess]\n    file: {path: /tmp/x}\n", `stream: outputs[0] (a): types[0]: "action.sucess" matches no journal entry type`},
		{"inner", "outputs:\n  - name: a\n    syslog: {network: tcp}\n", "stream: outputs[0] (a): syslog config: address: missing (host:port)"},
		{"collects all", "outputs:\n  - name: a\n    syslog: {network: tcp}\n  - name: b\n    program: {argv: []}\n", "syslog config: address: missing (host:port)\noutputs[1] (b): program config: argv: missing"},
		{"unknown key", "outputs:\n  - name: a\n    kafka: {}\n", "field kafka not found"},
		{"priority", "outputs:\n  - name: a\n    min_priority: loud\n    file: {path: /tmp/x}\n", `unknown priority "loud"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.yaml)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// A program that cannot be found fails New, and what was opened before it
// is closed again.
func TestNewClosesOnError(t *testing.T) {
	dir := t.TempDir()
	cfg, err := decode(t, fmt.Sprintf("outputs:\n  - name: a\n    file: {path: %q}\n  - name: b\n    program: {argv: [riposte-no-such-program]}\n", filepath.Join(dir, "a.jsonl")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Deps{})
	if err == nil || !strings.Contains(err.Error(), "stream: outputs[1] (b): program config: argv[0]") {
		t.Fatalf("New: %v", err)
	}
}
