package jsonenc

import (
	"encoding/json"
	"slices"
	"strconv"
)

// AppendString appends s as json.Marshal encodes a string: as is when it
// is printable ASCII with nothing to escape, else through json.Marshal
// (its escapes of <, >, &, control characters, U+2028, U+2029 and invalid
// UTF-8).
func AppendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			b, _ := json.Marshal(s) // a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// plain[c]: json.Marshal writes the byte c of a string as is.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendValue appends v as json.Marshal encodes it; false when Marshal
// refuses it (call Marshal on the whole for its error).
func AppendValue(buf []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(buf, "null"...), true
	case string:
		return AppendString(buf, v), true
	case bool:
		return strconv.AppendBool(buf, v), true
	case int:
		return strconv.AppendInt(buf, int64(v), 10), true
	case int64:
		return strconv.AppendInt(buf, v, 10), true
	case map[string]any:
		return AppendMap(buf, v, AppendValue)
	case []any:
		return AppendList(buf, v, AppendValue)
	case []string:
		return AppendStrings(buf, v), true
	}
	b, err := json.Marshal(v)
	if err != nil {
		return buf, false
	}
	return append(buf, b...), true
}

// AppendMap appends m as json.Marshal encodes it (keys sorted), each value
// by value (AppendValue, or a caller's that knows more types).
func AppendMap(buf []byte, m map[string]any, value func([]byte, any) ([]byte, bool)) ([]byte, bool) {
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
		buf = AppendString(buf, k)
		buf = append(buf, ':')
		var ok bool
		if buf, ok = value(buf, m[k]); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

// AppendList appends v as json.Marshal encodes a slice: an array (null
// when nil), each element by appendElem; false when an element could not
// be appended.
func AppendList[T any](buf []byte, v []T, appendElem func([]byte, T) ([]byte, bool)) ([]byte, bool) {
	if v == nil {
		return append(buf, "null"...), true
	}
	buf = append(buf, '[')
	for i, e := range v {
		if i > 0 {
			buf = append(buf, ',')
		}
		var ok bool
		if buf, ok = appendElem(buf, e); !ok {
			return buf, false
		}
	}
	return append(buf, ']'), true
}

// AppendStrings appends v as json.Marshal encodes a []string (null when
// nil).
func AppendStrings(buf []byte, v []string) []byte {
	buf, _ = AppendList(buf, v, func(buf []byte, s string) ([]byte, bool) { return AppendString(buf, s), true })
	return buf
}
