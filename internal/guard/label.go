package guard

import (
	"strconv"
	"strings"
)

// Label is a protect label: "key=value", or "key" alone for any value. A
// value that is a spelling of true ("true", "1", "TRUE") accepts every
// spelling of true on the target, so `riposte.protect=True` protects too.
type Label struct {
	key, value string
	anyValue   bool
	boolTrue   bool
}

// ParseLabel reads "key=value" or "key"; "" gives a Label that matches
// nothing.
func ParseLabel(s string) Label {
	k, v, hasValue := strings.Cut(strings.TrimSpace(s), "=")
	m := Label{key: strings.TrimSpace(k), value: strings.TrimSpace(v), anyValue: !hasValue}
	if b, err := strconv.ParseBool(m.value); err == nil && b {
		m.boolTrue = true
	}
	return m
}

// Key is the label's key ("" when none was given).
func (m Label) Key() string { return m.key }

// Matches reports whether labels carry the protect label.
func (m Label) Matches(labels map[string]string) bool {
	if m.key == "" {
		return false
	}
	v, ok := labels[m.key]
	switch {
	case !ok:
		return false
	case m.anyValue:
		return true
	case m.boolTrue:
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		return err == nil && b
	}
	return strings.TrimSpace(v) == m.value
}
