package store

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/riposte-sec/riposte/internal/jsonenc"
)

// marshalDetail encodes an entry's detail exactly as json.Marshal does
// (package jsonenc), without its reflection for what details hold: plain
// values, plan steps and TheIncident. A value json.Marshal refuses makes
// the whole detail go through it, for its error. At intake two dry-run
// plans are encoded per alert, where the reflection cost more than the
// entries' insert.
func marshalDetail(d map[string]any) ([]byte, error) {
	if d == nil {
		return []byte("{}"), nil
	}
	if b, ok := jsonenc.AppendMap(make([]byte, 0, 512), d, appendDetailValue); ok {
		return b, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal detail: %w", err)
	}
	return b, nil
}

func appendDetailValue(buf []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case []PlanStep:
		return jsonenc.AppendList(buf, v, appendPlanStep)
	case incidentRef:
		return append(buf, incidentMark...), true
	}
	return jsonenc.AppendValue(buf, v)
}

// appendPlanStep appends s as json.Marshal encodes a PlanStep: its fields
// in declaration order, the omitempty ones left out when empty.
func appendPlanStep(buf []byte, s PlanStep) ([]byte, bool) {
	buf = append(buf, `{"index":`...)
	buf = strconv.AppendInt(buf, int64(s.Index), 10)
	buf = append(buf, `,"do":`...)
	buf = jsonenc.AppendString(buf, s.Action)
	if len(s.With) > 0 {
		buf = append(buf, `,"with":`...)
		var ok bool
		if buf, ok = jsonenc.AppendMap(buf, s.With, jsonenc.AppendValue); !ok {
			return buf, false
		}
	}
	buf = append(buf, `,"decision":`...)
	buf = jsonenc.AppendString(buf, s.Decision)
	if s.Reason != "" {
		buf = append(buf, `,"reason":`...)
		buf = jsonenc.AppendString(buf, s.Reason)
	}
	if s.Silence != "" {
		buf = append(buf, `,"silence":`...)
		buf = jsonenc.AppendString(buf, s.Silence)
	}
	return append(buf, '}'), true
}
