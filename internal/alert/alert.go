package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/riposte-sec/riposte/internal/jsonenc"
)

// HostContainerID is the container.id Falco uses for events on the host.
const HostContainerID = "host"

// Alert is one detection, in Falco's JSON shape. ID carries Falcosidekick's
// uuid when the sender set one, and otherwise a deterministic id derived from
// the alert's canonical body, so that a retried POST is the same alert.
type Alert struct {
	ID           string         `json:"uuid"`
	Time         time.Time      `json:"time"`
	Rule         string         `json:"rule"`
	Priority     Priority       `json:"priority"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Source       string         `json:"source,omitempty"`
	Tags         []string       `json:"tags"`
	Hostname     string         `json:"hostname,omitempty"`
}

// MarshalJSON writes the Falco wire shape with the time in RFC 3339 (UTC,
// nanoseconds) and never-null tags and output_fields.
func (a Alert) MarshalJSON() ([]byte, error) {
	if b, ok := a.appendJSON(make([]byte, 0, 512+len(a.Output))); ok {
		return b, nil
	}
	return a.marshalWire()
}

// marshalWire is MarshalJSON by json.Marshal: what appendJSON must write,
// and the error of an alert it cannot.
func (a Alert) marshalWire() ([]byte, error) {
	type wire struct {
		ID           string         `json:"uuid,omitempty"`
		Time         string         `json:"time"`
		Rule         string         `json:"rule"`
		Priority     Priority       `json:"priority"`
		Output       string         `json:"output"`
		OutputFields map[string]any `json:"output_fields"`
		Source       string         `json:"source,omitempty"`
		Tags         []string       `json:"tags"`
		Hostname     string         `json:"hostname,omitempty"`
	}
	w := wire{
		ID: a.ID, Time: a.Time.UTC().Format(time.RFC3339Nano), Rule: a.Rule, Priority: a.Priority,
		Output: a.Output, OutputFields: a.OutputFields, Source: a.Source, Tags: a.Tags, Hostname: a.Hostname,
	}
	if w.OutputFields == nil {
		w.OutputFields = map[string]any{}
	}
	if w.Tags == nil {
		w.Tags = []string{}
	}
	return json.Marshal(w)
}

// appendJSON appends what MarshalJSON's json.Marshal writes, without its
// reflection (package jsonenc): the store encodes every accepted alert.
// False when a value needs json.Marshal's error (an invalid priority, an
// output field it refuses).
func (a *Alert) appendJSON(buf []byte) ([]byte, bool) {
	pri, err := a.Priority.MarshalText()
	if err != nil {
		return buf, false
	}
	if a.ID != "" {
		buf = append(buf, `{"uuid":`...)
		buf = jsonenc.AppendString(buf, a.ID)
		buf = append(buf, `,"time":`...)
	} else {
		buf = append(buf, `{"time":`...)
	}
	buf = jsonenc.AppendString(buf, a.Time.UTC().Format(time.RFC3339Nano))
	buf = append(buf, `,"rule":`...)
	buf = jsonenc.AppendString(buf, a.Rule)
	buf = append(buf, `,"priority":`...)
	buf = jsonenc.AppendString(buf, string(pri))
	buf = append(buf, `,"output":`...)
	buf = jsonenc.AppendString(buf, a.Output)
	buf = append(buf, `,"output_fields":`...)
	if a.OutputFields == nil {
		buf = append(buf, "{}"...)
	} else {
		var ok bool
		if buf, ok = jsonenc.AppendMap(buf, a.OutputFields, jsonenc.AppendValue); !ok {
			return buf, false
		}
	}
	if a.Source != "" {
		buf = append(buf, `,"source":`...)
		buf = jsonenc.AppendString(buf, a.Source)
	}
	buf = append(buf, `,"tags":`...)
	tags := a.Tags
	if tags == nil {
		tags = []string{} // never null
	}
	buf = jsonenc.AppendStrings(buf, tags)
	if a.Hostname != "" {
		buf = append(buf, `,"hostname":`...)
		buf = jsonenc.AppendString(buf, a.Hostname)
	}
	return append(buf, '}'), true
}

// UnmarshalJSON decodes one alert strictly; see Decode.
func (a *Alert) UnmarshalJSON(b []byte) error {
	v, err := decodeOne(b)
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// Field returns output_fields[name] formatted as text, "" when absent.
func (a *Alert) Field(name string) string {
	v, ok := a.OutputFields[name]
	if !ok || v == nil {
		return ""
	}
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Container is the container an alert is about, from Falco's field names.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	Tag   string `json:"tag"`
}

// Container returns the alert's container identity. ID is "" when the alert
// names no container and "host" when it is about the host.
func (a *Alert) Container() Container {
	return Container{
		ID:    a.Field("container.id"),
		Name:  a.Field("container.name"),
		Image: a.Field("container.image.repository"),
		Tag:   a.Field("container.image.tag"),
	}
}

// InContainer reports whether the alert is about a container (not the host).
func (a *Alert) InContainer() bool {
	id := a.Field("container.id")
	return id != "" && id != HostContainerID
}

// HasTag reports whether tag is among the alert's tags.
func (a *Alert) HasTag(tag string) bool {
	for _, t := range a.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// DeterministicID derives an id from the canonical JSON of the alert without
// its uuid: the SHA-256 of that body, written as an RFC 9562 version 8 UUID.
func DeterministicID(a Alert) string {
	a.ID = ""
	if a.Tags != nil {
		tags := append([]string(nil), a.Tags...)
		sort.Strings(tags)
		a.Tags = tags
	}
	body, err := json.Marshal(a)
	if err != nil {
		// Only values from Decode reach here; they always marshal.
		body = []byte(a.Rule + a.Time.String() + a.Output)
	}
	sum := sha256.Sum256(body)
	u := sum[:16]
	u[6] = (u[6] & 0x0f) | 0x80 // version 8
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
