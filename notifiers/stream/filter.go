package stream

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/glob"
	"github.com/riposte-sec/riposte/internal/store"
)

// Filter selects the records an output receives. The zero Filter passes
// every record (except self reports, which nothing passes).
//
//	kinds: [alert, journal]            # default: both
//	types: ["action.*", "incident.*"]  # journal entry types, * and ? globs; default: all
//	rules: ["Terminal shell*"]         # rule globs, alerts and journal entries alike; default: all
//	min_priority: warning              # default: debug (everything)
type Filter struct {
	Kinds []Kind `yaml:"kinds"`
	// Types select journal records by entry type; alerts are not subject
	// to it.
	Types []string `yaml:"types"`
	// Rules select records by rule; a record with no rule (a note, for
	// instance) does not pass a filter that names rules.
	Rules       []string       `yaml:"rules"`
	MinPriority alert.Priority `yaml:"min_priority"`
}

// Validate checks kinds, that every type pattern matches at least one known
// journal entry type (a typo would otherwise silence the output), and that
// patterns are valid UTF-8.
func (f Filter) Validate() error {
	var errs []error
	seen := map[Kind]bool{}
	for i, k := range f.Kinds {
		switch {
		case k != KindAlert && k != KindJournal:
			errs = append(errs, fmt.Errorf("kinds[%d]: unknown kind %q (want alert or journal)", i, k))
		case seen[k]:
			errs = append(errs, fmt.Errorf("kinds[%d]: %s listed twice", i, k))
		}
		seen[k] = true
	}
	if len(f.Types) > 0 && len(f.Kinds) > 0 && !seen[KindJournal] {
		errs = append(errs, errors.New("types: only apply to journal records, but kinds leaves journal out"))
	}
	known := EntryTypes()
	for i, p := range f.Types {
		if p == "" || !utf8.ValidString(p) {
			errs = append(errs, fmt.Errorf("types[%d]: want a journal entry type or a glob, got %q", i, p))
			continue
		}
		if !slices.ContainsFunc(known, func(t store.EntryType) bool { return Glob(p, string(t)) }) {
			names := make([]string, len(known))
			for j, t := range known {
				names[j] = string(t)
			}
			errs = append(errs, fmt.Errorf("types[%d]: %q matches no journal entry type (known: %s)", i, p, strings.Join(names, ", ")))
		}
	}
	for i, p := range f.Rules {
		if p == "" || !utf8.ValidString(p) {
			errs = append(errs, fmt.Errorf("rules[%d]: want a rule name or a glob, got %q", i, p))
		}
	}
	if f.MinPriority < alert.PriorityDebug || f.MinPriority > alert.PriorityEmergency {
		errs = append(errs, fmt.Errorf("min_priority: out of range (%d)", int(f.MinPriority)))
	}
	return errors.Join(errs...)
}

// Match reports whether r passes the filter.
func (f Filter) Match(r Record) bool {
	if r.SelfReport {
		return false
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, r.Kind) {
		return false
	}
	if r.Priority < f.MinPriority {
		return false
	}
	if r.Kind == KindJournal && len(f.Types) > 0 &&
		!slices.ContainsFunc(f.Types, func(p string) bool { return Glob(p, r.Type) }) {
		return false
	}
	if len(f.Rules) > 0 &&
		(r.Rule == "" || !slices.ContainsFunc(f.Rules, func(p string) bool { return Glob(p, r.Rule) })) {
		return false
	}
	return true
}

// Glob matches s against pattern, where * is any run of characters and ?
// is one character: the matching playbooks use for rule names.
func Glob(pattern, s string) bool { return glob.Match(pattern, s) }
