package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// MaxIDLength bounds a sender-chosen uuid; ids are journal keys.
const MaxIDLength = 128

// Limits on what one request may make the decoder build: JSON numbers and
// small values cost far more decoded than on the wire (a 1 MiB array of
// 500,000 numbers is ~57 MB of interfaces), so counts are checked on the
// raw bytes before anything is decoded. Falco sends a few dozen fields and
// a handful of tags per alert.
const (
	MaxAlerts      = 10000 // alerts per request
	MaxFieldValues = 4096  // values in one alert's output_fields, nested ones included
	MaxTags        = 256   // tags of one alert
)

// Decode reads one alert, a JSON array of alerts, or newline-delimited
// alerts (NDJSON) and returns them in order. Any bad alert fails the whole
// batch with an error naming its position, the field and the bad value.
func Decode(data []byte) ([]Alert, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("decode alerts: empty body")
	}
	if trimmed[0] == '{' {
		if objectEnd(trimmed) == len(bytes.TrimRight(trimmed, " \t\r\n")) {
			// One alert, the body of Falco's http_output and of most
			// webhook requests: decoded in place, without splitting it
			// first. A bad one goes the general way below, which words the
			// error.
			if a, err := decodeOne(trimmed); err == nil {
				return []Alert{a}, nil
			}
		} else if as, ok := decodeObjects(trimmed); ok {
			return as, nil
		}
	}
	return decodeAll(trimmed)
}

// decodeObjects is Decode for objects one after another (NDJSON), each
// decoded in place where its brackets end instead of split off first by
// a json.Decoder, which cost a third of decoding a batch. Anything else
// (a value that is not an object, more than MaxAlerts, a bad alert) is
// false, for decodeAll to word the error.
func decodeObjects(data []byte) ([]Alert, bool) {
	var out []Alert
	for {
		data = bytes.TrimLeft(data, " \t\r\n")
		if len(data) == 0 {
			return out, len(out) > 0
		}
		if data[0] != '{' || len(out) == MaxAlerts {
			return nil, false
		}
		end := objectEnd(data)
		if end < 0 {
			return nil, false
		}
		a, err := decodeOne(data[:end])
		if err != nil {
			return nil, false
		}
		out = append(out, a)
		data = data[end:]
	}
}

// decodeAll is Decode for a body split into its values first: an array,
// NDJSON, or one value (FuzzDecode checks the fast path against it).
func decodeAll(trimmed []byte) ([]Alert, error) {
	var raws []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, fmt.Errorf("decode alerts: %s", describeJSONError(err, trimmed))
		}
		if len(raws) == 0 {
			return nil, errors.New("decode alerts: empty array")
		}
		if len(raws) > MaxAlerts {
			return nil, fmt.Errorf("decode alerts: more than %d alerts in one request", MaxAlerts)
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for {
			var raw json.RawMessage
			err := dec.Decode(&raw)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("decode alerts: alert %d: %s", len(raws)+1, describeJSONError(err, trimmed))
			}
			if len(raws) == MaxAlerts {
				return nil, fmt.Errorf("decode alerts: more than %d alerts in one request", MaxAlerts)
			}
			raws = append(raws, raw)
		}
	}
	out := make([]Alert, 0, len(raws))
	for i, raw := range raws {
		a, err := decodeOne(raw)
		if err != nil {
			if len(raws) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("alert %d: %w", i+1, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// FieldError is a decode error about one field of an alert.
type FieldError struct {
	Field  string
	Value  string // the offending value, quoted JSON or "" when missing
	Reason string
}

func (e *FieldError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("decode alert: field %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("decode alert: field %s: %s: %s", e.Field, e.Reason, e.Value)
}

type wireAlert struct {
	UUID         *string         `json:"uuid"`
	Time         *string         `json:"time"`
	Rule         *string         `json:"rule"`
	Priority     *string         `json:"priority"`
	Output       string          `json:"output"`
	OutputFields json.RawMessage `json:"output_fields"`
	Source       string          `json:"source"`
	Tags         []string        `json:"tags"`
	Hostname     string          `json:"hostname"`
}

func decodeOne(raw []byte) (Alert, error) {
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Alert{}, fmt.Errorf("decode alert: want a JSON object, got %s", snippet(trimmed))
	}
	var w wireAlert
	if err := json.Unmarshal(trimmed, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Alert{}, &FieldError{Field: te.Field, Reason: "want " + jsonKind(te.Type.String()) + ", got " + te.Value}
		}
		return Alert{}, fmt.Errorf("decode alert: %s", describeJSONError(err, trimmed))
	}
	// output_fields is still raw: counted before it is decoded into values.
	if countValues(w.OutputFields, MaxFieldValues) > MaxFieldValues {
		return Alert{}, &FieldError{Field: "output_fields", Reason: fmt.Sprintf("more than %d values", MaxFieldValues)}
	}
	if len(w.Tags) > MaxTags {
		return Alert{}, &FieldError{Field: "tags", Reason: fmt.Sprintf("more than %d tags", MaxTags)}
	}
	var a Alert
	if w.Rule == nil || strings.TrimSpace(*w.Rule) == "" {
		return Alert{}, &FieldError{Field: "rule", Reason: "missing"}
	}
	if hasControl(*w.Rule) {
		return Alert{}, &FieldError{Field: "rule", Value: quote(*w.Rule), Reason: "contains a control character"}
	}
	a.Rule = *w.Rule
	if w.Priority == nil {
		return Alert{}, &FieldError{Field: "priority", Reason: "missing"}
	}
	p, err := ParsePriority(*w.Priority)
	if err != nil {
		return Alert{}, &FieldError{Field: "priority", Value: quote(*w.Priority), Reason: "unknown priority"}
	}
	a.Priority = p
	if w.Time == nil || *w.Time == "" {
		return Alert{}, &FieldError{Field: "time", Reason: "missing"}
	}
	t, err := time.Parse(time.RFC3339Nano, *w.Time)
	if err != nil {
		return Alert{}, &FieldError{Field: "time", Value: quote(*w.Time), Reason: "not an RFC 3339 time"}
	}
	a.Time = t.UTC()
	a.Output = w.Output
	a.Source = w.Source
	a.Tags = w.Tags
	a.Hostname = w.Hostname
	if len(w.OutputFields) > 0 && !bytes.Equal(bytes.TrimSpace(w.OutputFields), []byte("null")) {
		fields, err := decodeFields(w.OutputFields)
		if err != nil {
			return Alert{}, err
		}
		a.OutputFields = fields
	}
	if a.OutputFields == nil {
		a.OutputFields = map[string]any{}
	}
	if id, ok := a.OutputFields["container.id"].(string); ok && hasControl(id) {
		return Alert{}, &FieldError{Field: "output_fields.container.id", Value: quote(id), Reason: "contains a control character"}
	}
	if w.UUID != nil && *w.UUID != "" {
		if len(*w.UUID) > MaxIDLength {
			return Alert{}, &FieldError{Field: "uuid", Value: quote((*w.UUID)[:32] + "..."), Reason: fmt.Sprintf("longer than %d bytes", MaxIDLength)}
		}
		for _, r := range *w.UUID {
			if r < 0x21 || r > 0x7e {
				return Alert{}, &FieldError{Field: "uuid", Value: quote(*w.UUID), Reason: "must be printable ASCII without spaces"}
			}
		}
		a.ID = *w.UUID
	} else {
		a.ID = DeterministicID(a)
	}
	return a, nil
}

// decodeFields keeps integers exact (evt.time is nanoseconds, beyond float64)
// and turns every JSON number into int64 when it is integral, else float64.
func decodeFields(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var fields map[string]any
	if err := dec.Decode(&fields); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, &FieldError{Field: "output_fields", Reason: "want object, got " + te.Value}
		}
		return nil, fmt.Errorf("decode alert: field output_fields: %w", err)
	}
	for k, v := range fields {
		fields[k] = normalize(v)
	}
	return fields, nil
}

func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
		return x
	}
	return v
}

func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "array of strings"
	case goType == "string" || goType == "*string":
		return "string"
	}
	return goType
}

func describeJSONError(err error, data []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := position(data, se.Offset)
		return fmt.Sprintf("invalid JSON at line %d column %d: %s", line, col, se.Error())
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "invalid JSON: unexpected end of input"
	}
	return "invalid JSON: " + err.Error()
}

func position(data []byte, offset int64) (line, col int) {
	line, col = 1, 1
	for i := int64(0); i < offset-1 && i < int64(len(data)); i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func snippet(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	if len(b) == 0 {
		return "nothing"
	}
	return string(b)
}

// hasControl reports a character below U+0020 (NUL, newline, ...): rule
// names and container ids key incidents and must be plain text.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 {
			return true
		}
	}
	return false
}

// objectEnd returns the offset just past the JSON object that data starts
// with ('{'), by brackets outside strings, or -1 when it does not end.
// Whether the object is valid JSON is for the decoder to say.
func objectEnd(data []byte) int {
	_, end := scanValues(data, math.MaxInt)
	return end
}

// countValues returns about how many JSON values raw (one JSON value)
// holds, stopping once past limit.
func countValues(raw []byte, limit int) int {
	n, _ := scanValues(raw, limit)
	return n
}

// scanValues walks data outside JSON strings: values counts the values that
// start in it (each '{', '[' and ',' starts one), stopping once past limit;
// end is the offset just past the object or array data starts with, by its
// brackets, where the walk stops (-1 when it does not end).
func scanValues(data []byte, limit int) (values, end int) {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[' || c == ',':
			values++
			if values > limit {
				return values, -1
			}
			if c != ',' {
				depth++
			}
		case c == '}' || c == ']':
			depth--
			if depth == 0 {
				return values, i + 1
			}
		}
	}
	return values, -1
}

// DecodeStored reads one alert in the form MarshalJSON writes, which is the
// form the store keeps: an alert already decoded and checked by Decode (or
// built by the detector) when it was accepted. It decodes in one pass,
// without Decode's limits, checks and positioned messages; integers in
// output_fields stay exact as in Decode. Input from outside goes through
// Decode.
func DecodeStored(raw []byte) (Alert, error) {
	type fields Alert // Alert's fields and tags, without its UnmarshalJSON
	var w fields
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return Alert{}, fmt.Errorf("decode stored alert: %w", err)
	}
	if w.Rule == "" || w.Time.IsZero() {
		return Alert{}, errors.New("decode stored alert: rule or time missing")
	}
	for k, v := range w.OutputFields {
		w.OutputFields[k] = normalize(v)
	}
	if w.OutputFields == nil {
		w.OutputFields = map[string]any{}
	}
	w.Time = w.Time.UTC()
	return Alert(w), nil
}
