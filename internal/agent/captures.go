package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
)

// PathCapture is where an agent reports the end of a background capture
// (scope agent), journaled capture.finished by the replica.
const PathCapture = "/v1/agent/capture"

// CaptureEnd is the end of a capture that ran on after its capture.start
// answered (the capture integration's background captures).
type CaptureEnd struct {
	CaptureID string         `json:"capture_id"`
	Node      string         `json:"node"`
	Agent     string         `json:"agent"`
	Key       string         `json:"key"` // the capture.start's action key
	Action    string         `json:"action"`
	Actor     string         `json:"actor,omitempty"`
	AlertID   string         `json:"alert_id,omitempty"`
	Incident  string         `json:"incident,omitempty"`
	Container string         `json:"container,omitempty"`
	Result    actions.Result `json:"result"`
	Error     string         `json:"error,omitempty"`
}

// A background capture says so in its start's result: Detail["background"]
// true and Detail["capture_id"] (responders/capture's startResult).
func backgroundCapture(res actions.Result) (string, bool) {
	bg, _ := res.Detail["background"].(bool)
	id, _ := res.Detail["capture_id"].(string)
	return id, bg && id != "" && !strings.ContainsAny(id, `/\`)
}

// captureDir holds the agent's background captures: running/<id>.json
// while one records (what to report if the agent dies), ended/<id>.json
// until a replica journaled its end.
func (a *Agent) captureFile(state, id string) string {
	return filepath.Join(a.cfg.Data, "captures", state, id+".json")
}

// noteCapture records a background capture that started.
func (a *Agent) noteCapture(w Work, res actions.Result) {
	id, ok := backgroundCapture(res)
	if !ok {
		return
	}
	r := w.Request
	ev := CaptureEnd{CaptureID: id, Node: a.cfg.Node, Agent: a.id, Key: w.Key, Action: r.Action, Actor: r.Actor,
		AlertID: r.Alert.ID, Incident: r.Incident, Container: r.Container}
	if err := a.putCapture("running", ev); err != nil {
		a.log.Error("record a running capture", "capture", id, "err", err)
	}
}

func (a *Agent) putCapture(state string, ev CaptureEnd) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	path := a.captureFile(state, ev.CaptureID)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileSync(path, b)
}

// CaptureEnded takes the end of a capture (the capture integration's
// OnFinish): kept on disk, then reported to a replica, which journals
// capture.finished.
func (a *Agent) CaptureEnded(ev CaptureEnd) {
	ev.Node, ev.Agent = a.cfg.Node, a.id
	if err := a.putCapture("ended", ev); err != nil {
		a.log.Error("record a capture's end", "capture", ev.CaptureID, "err", err)
	}
	_ = os.Remove(a.captureFile("running", ev.CaptureID))
	a.kick()
}

// recoverCaptures turns the captures that were running when the agent
// stopped into ends with an error: they were cut short.
func (a *Agent) recoverCaptures() {
	ents, _ := os.ReadDir(filepath.Join(a.cfg.Data, "captures", "running"))
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		var ev CaptureEnd
		if b, err := os.ReadFile(a.captureFile("running", id)); err != nil || json.Unmarshal(b, &ev) != nil {
			ev = CaptureEnd{CaptureID: id}
		}
		a.log.Warn("a capture was running when the agent stopped: reporting it cut short", "capture", id)
		ev.Result = actions.Result{Note: "cut short: the agent stopped during the capture"}
		ev.Error = fmt.Sprintf("capture %s cut short: the agent of node %s stopped while it recorded", id, a.cfg.Node)
		a.CaptureEnded(ev)
	}
}

// reportCaptures sends the recorded ends until a replica journaled them.
func (a *Agent) reportCaptures(ctx context.Context) {
	dir := filepath.Join(a.cfg.Data, "captures", "ended")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		resp, err := a.deps.Replicas.Post(ctx, PathCapture, b, 30*time.Second)
		if err != nil {
			a.log.Warn("report a capture's end; kept to report again", "file", path, "err", err)
			return
		}
		if resp.Status != http.StatusOK {
			a.log.Warn("a capture's end not journaled yet; kept", "file", path, "status", resp.Status, "answer", snippet(resp.Body))
			continue
		}
		_ = os.Remove(path)
	}
}
