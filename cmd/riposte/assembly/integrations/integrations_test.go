package integrations

import (
	"regexp"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/notifiers/email"
	"github.com/riposte-sec/riposte/notifiers/pagerduty"
	"github.com/riposte-sec/riposte/notifiers/slack"
	"github.com/riposte-sec/riposte/notifiers/webhook"
	"github.com/riposte-sec/riposte/responders/capture"
	"github.com/riposte-sec/riposte/responders/docker"
)

// TestCatalogBuilds is the check Catalog's panic relies on: the fixed list
// has no duplicate action name.
func TestCatalogBuilds(t *testing.T) {
	specs := Specs()
	c, err := actions.NewCatalog(specs...)
	if err != nil {
		t.Fatalf("the registry's specs do not make a catalog: %v", err)
	}
	if got, want := len(c.Names()), len(specs); got != want {
		t.Errorf("catalog holds %d actions, the registry lists %d", got, want)
	}
	if got := Catalog().Names(); len(got) != len(specs) {
		t.Errorf("Catalog() holds %d actions, want %d", len(got), len(specs))
	}
}

var actionName = regexp.MustCompile(`^[a-z]+\.[a-z_]+$`)

// TestSpecsDescribeThemselves: every action says what it does and every
// parameter has a known type, help, a unique name and a default its own
// type accepts (unless it comes from the config), so that `riposte actions` and the playbook loader can rely
// on them.
func TestSpecsDescribeThemselves(t *testing.T) {
	for _, s := range Specs() {
		t.Run(s.Name, func(t *testing.T) {
			if !actionName.MatchString(s.Name) {
				t.Errorf("name %q is not section.verb", s.Name)
			}
			if strings.TrimSpace(s.Help) == "" {
				t.Error("no help")
			}
			seen := map[string]bool{}
			for _, p := range s.Params {
				if p.Name == "" {
					t.Error("a parameter has no name")
				}
				if seen[p.Name] {
					t.Errorf("parameter %q declared twice", p.Name)
				}
				seen[p.Name] = true
				if strings.HasPrefix(p.Type.String(), "ParamType(") {
					t.Errorf("parameter %q has no known type (%v)", p.Name, p.Type)
				}
				if strings.TrimSpace(p.Help) == "" {
					t.Errorf("parameter %q has no help", p.Name)
				}
				if p.Required && p.Default != "" {
					t.Errorf("parameter %q is required and has a default %q", p.Name, p.Default)
				}
				// A default that comes from the config says so in words
				// ("snapshot.max_bytes from config (1GiB)"); a literal
				// default must be a value of the parameter's type.
				if p.Default != "" && !strings.Contains(p.Default, " from config") {
					if err := actions.CheckValue(p.Type, p.Default); err != nil {
						t.Errorf("parameter %q: default %q: %v", p.Name, p.Default, err)
					}
				}
			}
		})
	}
}

// TestBehaviourFlags: the actions the engine queues to the outbox
// (Spec.Notification) are exactly the notifiers' actions; a notification
// never acts on a container, and containment never waits in the outbox.
// The flags the engine reads instead of names sit where they belong:
// release undoes containment, resolve follows a release, notes are notes.
func TestBehaviourFlags(t *testing.T) {
	notifications := map[string]bool{}
	for _, specs := range [][]actions.Spec{slack.Specs(), pagerduty.Specs(), email.Specs(), webhook.Specs()} {
		for _, s := range specs {
			notifications[s.Name] = true
		}
	}
	if len(notifications) == 0 {
		t.Fatal("no notifier declares an action")
	}
	flagged := map[string][]string{}
	for _, s := range Specs() {
		if s.Notification != notifications[s.Name] {
			t.Errorf("%s: Notification = %v, want %v", s.Name, s.Notification, notifications[s.Name])
		}
		if s.Notification && (s.Container || s.Destructive) {
			t.Errorf("%s goes through the outbox but acts on a container (container %v, destructive %v)", s.Name, s.Container, s.Destructive)
		}
		if s.Notification && !strings.Contains(HowToConfigure(s.Name), "notifiers."+strings.Split(s.Name, ".")[0]) {
			t.Errorf("HowToConfigure(%q) = %q, want the notifiers section", s.Name, HowToConfigure(s.Name))
		}
		if s.NoteParam != "" {
			if p, ok := s.Param(s.NoteParam); !ok || !p.Required {
				t.Errorf("%s: NoteParam %q is not a required parameter", s.Name, s.NoteParam)
			}
		}
		if s.Releases {
			flagged["releases"] = append(flagged["releases"], s.Name)
		}
		if s.OnRelease {
			flagged["on_release"] = append(flagged["on_release"], s.Name)
		}
		if s.NoteParam != "" {
			flagged["note"] = append(flagged["note"], s.Name)
		}
	}
	want := map[string][]string{
		"releases":   {"container.release", "containerd.release", "pod.release"},
		"on_release": {"pagerduty.resolve"},
		"note":       {"journal.note"},
	}
	for k, w := range want {
		if strings.Join(flagged[k], ",") != strings.Join(w, ",") {
			t.Errorf("%s: flagged %v, want %v", k, flagged[k], w)
		}
	}
	for _, specs := range [][]actions.Spec{docker.Specs(), capture.Specs(), {JournalNote}} {
		for _, s := range specs {
			if s.Notification {
				t.Errorf("%s runs inline but is flagged a notification", s.Name)
			}
		}
	}
}

// TestTable: names and sections are unique, every integration but the
// engine's own has a Build, and every action has an owner that says how to
// enable it.
func TestTable(t *testing.T) {
	names, sections := map[string]bool{}, map[string]bool{}
	for _, in := range Table() {
		if names[in.Name] {
			t.Errorf("integration %q listed twice", in.Name)
		}
		names[in.Name] = true
		if in.Section != "" {
			if sections[in.Section] {
				t.Errorf("section %q owned twice", in.Section)
			}
			sections[in.Section] = true
		}
		if in.Build == nil && in.Name != "journal" {
			t.Errorf("%s has no Build", in.Name)
		}
	}
	for _, s := range Specs() {
		if _, ok := Owner(s.Name); !ok {
			t.Errorf("%s has no owner", s.Name)
		}
	}
	for action, want := range map[string]string{
		"pod.isolate":   "add a kubernetes section to the config",
		"capture.start": "enable the detector",
		"slack.notify":  "add a notifiers.slack section to the config",
		"journal.note":  "it is built in",
		"nope.nope":     "no integration implements it",
	} {
		if got := HowToConfigure(action); !strings.Contains(got, want) {
			t.Errorf("HowToConfigure(%s) = %q, want %q", action, got, want)
		}
	}
}
