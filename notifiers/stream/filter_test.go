package stream

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/alert"
)

func TestFilterMatch(t *testing.T) {
	alertRec := Record{Kind: KindAlert, Type: TypeAlert, Priority: alert.PriorityWarning, Rule: "Terminal shell in container"}
	failed := Record{Kind: KindJournal, Type: "action.failed", Priority: alert.PriorityError, Rule: "Terminal shell in container"}
	note := Record{Kind: KindJournal, Type: "note", Priority: alert.PriorityInformational}
	self := Record{Kind: KindJournal, Type: "notification.sent", Priority: alert.PriorityEmergency, SelfReport: true}

	tests := []struct {
		name   string
		filter Filter
		rec    Record
		want   bool
	}{
		{"zero passes alerts", Filter{}, alertRec, true},
		{"zero passes journal", Filter{}, note, true},
		{"zero refuses self reports", Filter{}, self, false},
		{"kinds alert only", Filter{Kinds: []Kind{KindAlert}}, note, false},
		{"kinds alert only passes alert", Filter{Kinds: []Kind{KindAlert}}, alertRec, true},
		{"min priority equal", Filter{MinPriority: alert.PriorityWarning}, alertRec, true},
		{"min priority above", Filter{MinPriority: alert.PriorityError}, alertRec, false},
		{"min priority derived", Filter{MinPriority: alert.PriorityError}, failed, true},
		{"types glob", Filter{Types: []string{"action.*"}}, failed, true},
		{"types exact miss", Filter{Types: []string{"action.succeeded"}}, failed, false},
		{"types do not filter alerts", Filter{Types: []string{"action.*"}}, alertRec, true},
		{"rules glob", Filter{Rules: []string{"Terminal shell*"}}, failed, true},
		{"rules miss", Filter{Rules: []string{"Write below etc"}}, alertRec, false},
		{"rules refuse records without rule", Filter{Rules: []string{"*"}}, note, false},
		{"everything", Filter{Kinds: []Kind{KindJournal}, Types: []string{"action.fail?d"}, Rules: []string{"*shell*"}, MinPriority: alert.PriorityError}, failed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.filter.Match(tt.rec); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFilterYAML(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // error ("" for none)
		check      func(t *testing.T, f Filter)
	}{
		{"full", "kinds: [alert, journal]\ntypes: [\"action.*\", incident.opened]\nrules: [\"Terminal*\"]\nmin_priority: WARNING\n", "", func(t *testing.T, f Filter) {
			if len(f.Kinds) != 2 || f.MinPriority != alert.PriorityWarning || len(f.Types) != 2 || len(f.Rules) != 1 {
				t.Errorf("decoded %+v", f)
			}
		}},
		{"types the engine and captures write", "types: [action.queued, capture.finished, incident.acknowledged, action.skipped]\n", "", func(t *testing.T, f Filter) {
			if len(f.Types) != 4 {
				t.Errorf("decoded %+v", f)
			}
		}},
		{"info alias", "min_priority: info\n", "", func(t *testing.T, f Filter) {
			if f.MinPriority != alert.PriorityInformational {
				t.Errorf("min_priority = %v", f.MinPriority)
			}
		}},
		{"unknown kind", "kinds: [metrics]\n", `unknown record kind "metrics" (want alert or journal)`, nil},
		{"unknown priority", "min_priority: severe\n", `unknown priority "severe"`, nil},
		{"typo in type", "types: [action.sucess]\n", `types[0]: "action.sucess" matches no journal entry type (known: alert.received, `, nil},
		{"types without journal", "kinds: [alert]\ntypes: [note]\n", "types: only apply to journal records, but kinds leaves journal out", nil},
		{"kind twice", "kinds: [alert, alert]\n", "kinds[1]: alert listed twice", nil},
		{"empty rule", "rules: [\"\"]\n", `rules[0]: want a rule name or a glob, got ""`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Filter
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			err := dec.Decode(&f)
			if err == nil {
				err = f.Validate()
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				tt.check(t, f)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything/at all", true},
		{"action.*", "action.failed", true},
		{"action.*", "actions.failed", false},
		{"*.failed", "notification.failed", true},
		{"*.failed", "notification.failed.x", false},
		{"a*b*c", "aXXbYYc", true},
		{"a*b*c", "aXXbYY", false},
		{"a*a*a", "aaa", true},
		{"?", "é", true},
		{"??", "é", false},
		{"Shell spawned *", "Shell spawned by untrusted binary", true},
		{"[x]", "[x]", true}, // brackets are literal
		{"*x", "xyx", true},
		{"*xz", "xyx", false},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+"~"+tt.s, func(t *testing.T) {
			if got := Glob(tt.pattern, tt.s); got != tt.want {
				t.Errorf("Glob(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
			}
		})
	}
}
