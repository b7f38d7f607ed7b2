package engine

import (
	"encoding/json"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

// wireRequest is how a Request is kept in the outbox and in approvals: the
// alert is omitted when there is none (a hand-run action), since an alert
// without a rule does not decode.
type wireRequest struct {
	Action    string         `json:"action"`
	Params    actions.Params `json:"params,omitempty"`
	Alert     *alert.Alert   `json:"alert,omitempty"`
	Incident  string         `json:"incident,omitempty"`
	Container string         `json:"container,omitempty"`
	Actor     string         `json:"actor,omitempty"`
	Key       string         `json:"key,omitempty"`
	Steps     []actions.Step `json:"steps,omitempty"`
}

func encodeRequest(r actions.Request) ([]byte, error) {
	w := wireRequest{Action: r.Action, Params: r.Params, Incident: r.Incident, Container: r.Container, Actor: r.Actor, Key: r.Key, Steps: r.Steps}
	if r.Alert.Rule != "" {
		a := r.Alert
		w.Alert = &a
	}
	return json.Marshal(w)
}

func decodeRequest(b []byte) (actions.Request, error) {
	var w wireRequest
	if err := json.Unmarshal(b, &w); err != nil {
		return actions.Request{}, err
	}
	r := actions.Request{Action: w.Action, Params: w.Params, Incident: w.Incident, Container: w.Container, Actor: w.Actor, Key: w.Key, Steps: w.Steps}
	if w.Alert != nil {
		r.Alert = *w.Alert
	}
	if r.Params == nil {
		r.Params = actions.Params{}
	}
	return r, nil
}

func (p approvalPayload) MarshalJSON() ([]byte, error) {
	req, err := encodeRequest(p.Request)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Approval any             `json:"approval"`
		Request  json.RawMessage `json:"request"`
	}{p.Approval, req})
}

func (p *approvalPayload) UnmarshalJSON(b []byte) error {
	var w struct {
		Approval json.RawMessage `json:"approval"`
		Request  json.RawMessage `json:"request"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	if err := json.Unmarshal(w.Approval, &p.Approval); err != nil {
		return err
	}
	req, err := decodeRequest(w.Request)
	if err != nil {
		return err
	}
	p.Request = req
	return nil
}
