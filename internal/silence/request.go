package silence

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"

	"github.com/riposte-sec/riposte/internal/store"
)

// Request is the body of POST /v1/silences: a silence to create. The
// creator is not part of it: it is the credential the server
// authenticated.
type Request struct {
	Matcher store.SilenceMatcher `json:"matcher"`
	// StartsAt: zero is now.
	StartsAt time.Time `json:"starts_at,omitzero"`
	// EndsAt, or Duration from the start: exactly one of them.
	EndsAt   time.Time `json:"ends_at,omitzero"`
	Duration string    `json:"duration,omitempty"` // "1h", "30m"
	// Scope: notify (the default) or all.
	Scope   store.SilenceScope `json:"scope,omitempty"`
	Comment string             `json:"comment,omitempty"`
}

// Bounds of a request.
const (
	// MaxDuration is the longest silence: a forgotten one must end.
	MaxDuration = 30 * 24 * time.Hour
	maxComment  = 1024
	// MaxRequestBytes bounds the body of a create request.
	MaxRequestBytes = 64 << 10
)

// DecodeRequest reads a create request strictly: one JSON object, no
// unknown field, nothing after it. Checking its content is Silence's job.
func DecodeRequest(r io.Reader) (Request, error) {
	var req Request
	dec := json.NewDecoder(io.LimitReader(r, MaxRequestBytes+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, fmt.Errorf("decode silence request: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Request{}, errors.New("decode silence request: data after the JSON object")
	}
	return req, nil
}

// Silence checks the request and returns the silence it asks for, created
// by by at now. Every problem is named in the error.
func (r Request) Silence(now time.Time, by string) (store.Silence, error) {
	var errs []error
	s := store.Silence{Matcher: r.Matcher, Scope: r.Scope, StartsAt: r.StartsAt, EndsAt: r.EndsAt, CreatedBy: by, Comment: r.Comment}
	if s.Scope == "" {
		s.Scope = store.ScopeNotify
	}
	if s.Scope != store.ScopeNotify && s.Scope != store.ScopeAll {
		errs = append(errs, fmt.Errorf("scope: must be notify or all, got %q", r.Scope))
	}
	if s.StartsAt.IsZero() {
		s.StartsAt = now
	}
	switch {
	case r.Duration != "" && !r.EndsAt.IsZero():
		errs = append(errs, errors.New("ends_at and duration: give one of them"))
	case r.Duration != "":
		d, err := time.ParseDuration(r.Duration)
		if err != nil {
			errs = append(errs, fmt.Errorf("duration: %w", err))
		} else {
			s.EndsAt = s.StartsAt.Add(d)
		}
	case r.EndsAt.IsZero():
		errs = append(errs, errors.New("ends_at or duration: one is required"))
	}
	if !s.EndsAt.IsZero() {
		switch {
		case !s.EndsAt.After(s.StartsAt):
			errs = append(errs, errors.New("end: must be after the start"))
		case s.EndsAt.Sub(s.StartsAt) > MaxDuration:
			errs = append(errs, fmt.Errorf("end: at most %s after the start", MaxDuration))
		case !s.EndsAt.After(now):
			errs = append(errs, errors.New("end: already passed"))
		}
	}
	if err := checkText(r.Comment, maxComment); err != nil {
		errs = append(errs, fmt.Errorf("comment: %w", err))
	}
	if _, err := Compile(r.Matcher); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return store.Silence{}, fmt.Errorf("check silence request: %w", err)
	}
	return s, nil
}

// isControl: Cc (newlines, escapes), Cf (bidi overrides, zero-width), Zl
// and Zp (line and paragraph separators).
func isControl(r rune) bool { return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) }
