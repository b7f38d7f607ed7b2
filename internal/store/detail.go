package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// marshalDetail encodes an entry's detail exactly as json.Marshal does
// (keys sorted, the same escapes), without its reflection for the values
// the engine and the store put in details: strings, integers, booleans,
// nested maps and lists, plan steps and TheIncident. A string with
// anything json.Marshal escapes, and every other type, goes through
// json.Marshal on its own, which encodes a value the same alone as inside
// a map; a value it refuses makes the whole detail go through it, for its
// error. At intake a dry-run plan's entry is encoded per alert, where the
// reflection cost more than the entry's insert.
func marshalDetail(d map[string]any) ([]byte, error) {
	if d == nil {
		return []byte("{}"), nil
	}
	if b, ok := appendDetailMap(make([]byte, 0, 512), d); ok {
		return b, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal detail: %w", err)
	}
	return b, nil
}

// appendDetailMap appends m as json.Marshal encodes it; false when a value
// of it cannot be encoded.
func appendDetailMap(buf []byte, m map[string]any) ([]byte, bool) {
	if m == nil {
		return append(buf, "null"...), true
	}
	var small [16]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendDetailString(buf, k)
		buf = append(buf, ':')
		var ok bool
		if buf, ok = appendDetailValue(buf, m[k]); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

func appendDetailValue(buf []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case string:
		return appendDetailString(buf, v), true
	case bool:
		return strconv.AppendBool(buf, v), true
	case int:
		return strconv.AppendInt(buf, int64(v), 10), true
	case int64:
		return strconv.AppendInt(buf, v, 10), true
	case map[string]any:
		return appendDetailMap(buf, v)
	case []any:
		if v == nil {
			return append(buf, "null"...), true
		}
		buf = append(buf, '[')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = appendDetailValue(buf, e); !ok {
				return buf, false
			}
		}
		return append(buf, ']'), true
	case []string:
		if v == nil {
			return append(buf, "null"...), true
		}
		buf = append(buf, '[')
		for i, e := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendDetailString(buf, e)
		}
		return append(buf, ']'), true
	case []PlanStep:
		if v == nil {
			return append(buf, "null"...), true
		}
		buf = append(buf, '[')
		for i := range v {
			if i > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = appendPlanStep(buf, &v[i]); !ok {
				return buf, false
			}
		}
		return append(buf, ']'), true
	case incidentRef:
		return append(buf, incidentMark...), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return buf, false
	}
	return append(buf, b...), true
}

// appendPlanStep appends s as json.Marshal encodes a PlanStep: its fields
// in declaration order, the omitempty ones left out when empty.
func appendPlanStep(buf []byte, s *PlanStep) ([]byte, bool) {
	buf = append(buf, `{"index":`...)
	buf = strconv.AppendInt(buf, int64(s.Index), 10)
	buf = append(buf, `,"do":`...)
	buf = appendDetailString(buf, s.Action)
	if len(s.With) > 0 {
		buf = append(buf, `,"with":`...)
		var ok bool
		if buf, ok = appendDetailMap(buf, s.With); !ok {
			return buf, false
		}
	}
	buf = append(buf, `,"decision":`...)
	buf = appendDetailString(buf, s.Decision)
	if s.Reason != "" {
		buf = append(buf, `,"reason":`...)
		buf = appendDetailString(buf, s.Reason)
	}
	if s.Silence != "" {
		buf = append(buf, `,"silence":`...)
		buf = appendDetailString(buf, s.Silence)
	}
	return append(buf, '}'), true
}

// appendDetailString appends s as a JSON string the way json.Marshal does:
// as is when it is printable ASCII with nothing to escape, else through
// json.Marshal (its escapes of <, >, &, control characters, U+2028,
// U+2029 and invalid UTF-8).
func appendDetailString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plainJSON[s[i]] {
			b, _ := json.Marshal(s) // a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// plainJSON[c]: json.Marshal writes the byte c of a string as is.
var plainJSON = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
