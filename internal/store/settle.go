package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// TheIncident, as a value in the detail of a Settled entry, stands for the
// alert's incident id: the incident is found or opened in the accept's
// transaction, after the caller encoded the entry (see AcceptSettled).
var TheIncident any = incidentRef{}

type incidentRef struct{}

// incidentMark is what TheIncident encodes to: random per process, so that
// no text of an alert can pass for it. Encoded details are split at it and
// joined with the incident id in the writer.
var incidentMark = func() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return `"riposte-incident-ref-` + hex.EncodeToString(b[:]) + `"`
}()

func (incidentRef) MarshalJSON() ([]byte, error) { return []byte(incidentMark), nil }

// prepareSettled checks and encodes a Settled entry; the parts of its
// detail around each TheIncident are kept for withIncident.
func prepareSettled(e Entry) (prepared, error) {
	p, err := prepareEntry(e)
	if err != nil {
		return p, err
	}
	if strings.Contains(p.detail, incidentMark) {
		p.parts = strings.Split(p.detail, incidentMark)
	}
	return p, nil
}

// withIncident returns p with its TheIncident values replaced by id (an id of
// newID's form, which JSON needs no escapes for).
func (p prepared) withIncident(id string) prepared {
	if p.parts != nil {
		p.detail = strings.Join(p.parts, `"`+id+`"`)
		p.parts = nil
	}
	return p
}

// prepareSettledAll prepares the settled entries of alerts; nil where an
// alert has none.
func prepareSettledAll(settled []*Settled, n int) ([][]prepared, error) {
	if len(settled) == 0 {
		return nil, nil
	}
	if len(settled) > n {
		return nil, fmt.Errorf("%d settled outcomes for %d alerts", len(settled), n)
	}
	out := make([][]prepared, n)
	for i, st := range settled {
		if st == nil {
			continue
		}
		ps := make([]prepared, 0, len(st.Entries))
		for k, e := range st.Entries {
			p, err := prepareSettled(e)
			if err != nil {
				return nil, fmt.Errorf("alert %d: settled entry %d (%s): %w", i+1, k+1, e.Type, err)
			}
			ps = append(ps, p)
		}
		out[i] = ps
	}
	return out, nil
}

// PrepareSettledAll checks and encodes the settled entries of n alerts for
// another backend, in the caller's goroutine: nil where an alert has none;
// a bad entry is refused by its alert's and its own position, as
// AcceptSettled refuses it.
func PrepareSettledAll(settled []*Settled, n int) ([][]SettledEntry, error) {
	prep, err := prepareSettledAll(settled, n)
	if prep == nil || err != nil {
		return nil, err
	}
	out := make([][]SettledEntry, len(prep))
	for i, ps := range prep {
		if ps == nil {
			continue
		}
		out[i] = make([]SettledEntry, len(ps))
		for k, p := range ps {
			out[i][k] = SettledEntry{p: p}
		}
	}
	return out, nil
}

// SettledEntry is a Settled entry checked and encoded, waiting for its
// alert's incident id.
type SettledEntry struct{ p prepared }

// WithIncident returns the entry as stored, its incident references set to
// incident in DetailJSON (a join, cheap enough for a transaction that holds
// the chain). Entry.Detail is left as the caller gave it.
func (s SettledEntry) WithIncident(incident string) PreparedEntry {
	p := s.p.withIncident(incident)
	return PreparedEntry{Entry: p.Entry, DetailJSON: p.detail}
}
