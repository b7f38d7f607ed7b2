package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file is the journal's backend-independent part: the canonical
// encoding of an entry, its hash, and the chain check. See doc.go, "Journal
// encoding".

// CanonicalVersion is the first element of every canonical encoding.
const CanonicalVersion = "riposte.journal.v1"

// GenesisHash is the prev_hash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// timeLayout is RFC 3339 in UTC with a fixed nine-digit fraction, so that
// stored times sort as text in time order.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// FormatTime formats t as the store writes times: RFC 3339, UTC, nine
// fraction digits. The zero time is "".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), nil
}

// Row is a journal entry as stored: every field as the text that is hashed.
type Row struct {
	Seq      int64
	Time     string
	Type     string
	AlertID  string
	Playbook string
	Action   string
	Actor    string
	Detail   string
	SHA256   string
	PrevHash string
	Hash     string
}

// Canonical appends the canonical encoding of r (every field but Hash) to
// buf: the bytes SQLite's json_array('riposte.journal.v1', seq, time, type,
// alert_id, playbook, action, actor, detail, sha256, prev_hash) returns.
func (r *Row) Canonical(buf []byte) []byte {
	buf = append(buf, '[')
	buf = appendJSONString(buf, CanonicalVersion)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, r.Seq, 10)
	for _, s := range [...]string{r.Time, r.Type, r.AlertID, r.Playbook, r.Action, r.Actor, r.Detail, r.SHA256, r.PrevHash} {
		buf = append(buf, ',')
		buf = appendJSONString(buf, s)
	}
	return append(buf, ']')
}

// ComputeHash returns the lowercase hex SHA-256 of r's canonical encoding.
func (r *Row) ComputeHash() string {
	var arr [512]byte
	sum := sha256.Sum256(r.Canonical(arr[:0]))
	return hex.EncodeToString(sum[:])
}

// appendJSONString writes s as a JSON string the way SQLite's JSON functions
// do: backslash before '"' and '\', \b \t \n \f \r, \u00xx for the other
// control characters, everything else as is.
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\t':
			buf = append(buf, '\\', 't')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\f':
			buf = append(buf, '\\', 'f')
		case '\r':
			buf = append(buf, '\\', 'r')
		default:
			const hexDigits = "0123456789abcdef"
			buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// HashEntry returns the hash of an entry read back from a journal (or one
// with Seq, Time and PrevHash set), computed from its fields.
func HashEntry(e Entry) (string, error) {
	detail := e.rawDetail
	if detail == nil {
		var err error
		if detail, err = marshalDetail(e.Detail); err != nil {
			return "", err
		}
	}
	r := Row{
		Seq: e.Seq, Time: FormatTime(e.Time), Type: string(e.Type), AlertID: e.AlertID,
		Playbook: e.Playbook, Action: e.Action, Actor: e.Actor, Detail: string(detail),
		SHA256: e.SHA256, PrevHash: e.PrevHash,
	}
	return r.ComputeHash(), nil
}

// MarshalJSON writes the entry with detail exactly as stored when the entry
// was read back from a journal.
func (e Entry) MarshalJSON() ([]byte, error) {
	type plain Entry // no methods: no recursion
	detail := json.RawMessage(e.rawDetail)
	if detail == nil {
		var err error
		if detail, err = marshalDetail(e.Detail); err != nil {
			return nil, err
		}
	}
	return json.Marshal(struct {
		plain
		Time   string          `json:"time"`
		Detail json.RawMessage `json:"detail"`
	}{plain: plain(e), Time: FormatTime(e.Time), Detail: detail})
}

func decodeDetail(raw string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode detail: %w", err)
	}
	return m, nil
}

// prepared is an entry validated and encoded by its caller's goroutine, so
// that the writer only numbers, hashes and inserts it.
type prepared struct {
	Entry
	detail string
	// parts: detail split at each TheIncident (settle.go), nil when it
	// has none.
	parts []string
	// viaInbox: a settled alert's entry, found through the alert's inbox
	// row instead of the journal's alert index (schema version 5).
	viaInbox bool
}

func prepareEntries(entries []Entry) ([]prepared, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	out := make([]prepared, len(entries))
	for i, e := range entries {
		p, err := prepareEntry(e)
		if err != nil {
			return nil, fmt.Errorf("journal entry %d: %w", i+1, err)
		}
		out[i] = p
	}
	return out, nil
}

func prepareEntry(e Entry) (prepared, error) {
	if e.Type == "" {
		return prepared{}, errors.New("type is empty")
	}
	for _, f := range [...]struct{ name, v string }{
		{"type", string(e.Type)}, {"alert_id", e.AlertID}, {"playbook", e.Playbook},
		{"action", e.Action}, {"actor", e.Actor},
	} {
		if err := checkText(f.v); err != nil {
			return prepared{}, fmt.Errorf("field %s: %w", f.name, err)
		}
	}
	if e.SHA256 != "" && !isHexHash(e.SHA256) {
		return prepared{}, fmt.Errorf("field sha256: want 64 lowercase hex digits, got %q", e.SHA256)
	}
	d, err := marshalDetail(e.Detail)
	if err != nil {
		return prepared{}, err
	}
	if err := checkText(string(d)); err != nil {
		return prepared{}, fmt.Errorf("field detail: %w", err)
	}
	return prepared{Entry: e, detail: string(d)}, nil
}

func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// reorderSearch is how far away VerifyRows looks for the seq an entry's
// content was recorded at, to tell a reordering from an edit.
const reorderSearch = 64

// VerifyRows checks a journal's rows, read in seq order, against its
// recorded head (nil when none is recorded). It returns the number of rows
// read and the first problem, nil when the chain is intact. The error is
// only for failures to read rows.
func VerifyRows(rows iter.Seq2[Row, error], head *Head) (int64, *Problem, error) {
	expected := int64(1)
	prev := GenesisHash
	var n int64
	var buf []byte
	for r, err := range rows {
		if err != nil {
			return n, nil, err
		}
		n++
		if r.Seq != expected {
			if r.Seq > expected {
				what := fmt.Sprintf("entry %d is missing", expected)
				if r.Seq > expected+1 {
					what = fmt.Sprintf("entries %d to %d are missing", expected, r.Seq-1)
				}
				return n, &Problem{Seq: expected, Kind: Missing, Message: fmt.Sprintf(
					"%s: the journal goes from entry %d to entry %d (removed)", what, expected-1, r.Seq)}, nil
			}
			return n, &Problem{Seq: r.Seq, Kind: Moved, Message: fmt.Sprintf(
				"entry %d appears after entry %d (reordered)", r.Seq, expected-1)}, nil
		}
		buf = r.Canonical(buf[:0])
		sum := sha256.Sum256(buf)
		if hex.EncodeToString(sum[:]) != r.Hash {
			if at, ok := recordedAt(r); ok {
				return n, &Problem{Seq: r.Seq, Kind: Moved, Message: fmt.Sprintf(
					"entry %d holds the entry recorded as entry %d (reordered)", r.Seq, at)}, nil
			}
			return n, &Problem{Seq: r.Seq, Kind: Edited, Message: fmt.Sprintf(
				"entry %d was edited: its content does not match its hash", r.Seq)}, nil
		}
		if r.PrevHash != prev {
			return n, &Problem{Seq: r.Seq, Kind: Unchained, Message: fmt.Sprintf(
				"entry %d does not follow entry %d: its prev_hash is not entry %d's hash (entry %d was rewritten, or entries were removed and renumbered)",
				r.Seq, r.Seq-1, r.Seq-1, r.Seq-1)}, nil
		}
		prev = r.Hash
		expected++
	}
	last := expected - 1
	switch {
	case head == nil && last == 0:
		return n, nil, nil
	case head == nil:
		return n, &Problem{Seq: last, Kind: HeadBad, Message: fmt.Sprintf(
			"the journal has %d entries but no recorded head (journal_head was deleted)", last)}, nil
	case head.Seq > last:
		what := fmt.Sprintf("entry %d was removed", last+1)
		if head.Seq > last+1 {
			what = fmt.Sprintf("entries %d to %d were removed", last+1, head.Seq)
		}
		return n, &Problem{Seq: last + 1, Kind: Truncated, Message: fmt.Sprintf(
			"the journal ends at entry %d but its head records entry %d: %s (truncated)", last, head.Seq, what)}, nil
	case head.Seq < last:
		return n, &Problem{Seq: head.Seq + 1, Kind: HeadBad, Message: fmt.Sprintf(
			"the recorded head is entry %d but the journal goes on to entry %d (head edited, or entries added outside riposte)", head.Seq, last)}, nil
	case head.Hash != prev:
		return n, &Problem{Seq: last, Kind: HeadBad, Message: fmt.Sprintf(
			"entry %d does not match the recorded head hash (entry or head rewritten)", last)}, nil
	}
	return n, nil, nil
}

// recordedAt looks for the seq at which r's content hashes to r.Hash.
func recordedAt(r Row) (int64, bool) {
	seq := r.Seq
	for d := int64(1); d <= reorderSearch; d++ {
		for _, s := range [2]int64{seq - d, seq + d} {
			if s < 1 {
				continue
			}
			r.Seq = s
			if r.ComputeHash() == r.Hash {
				return s, true
			}
		}
	}
	return 0, false
}
