package assembly

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/rules"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/playbooks"
	"github.com/riposte-sec/riposte/responders/docker"
)

// TestExampleConfig: examples/riposte.yaml loads strictly, every section
// decodes into its integration's config, its playbooks load, and every
// action they use has an integration with this config (capture needs the
// detector, which the example enables).
func TestExampleConfig(t *testing.T) {
	cfg, err := LoadConfig("../../../examples/riposte.yaml", Overrides{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data != filepath.Join("../../../examples", "../riposte-data") || len(cfg.Playbooks) != 1 {
		t.Errorf("paths not taken from the config's folder: data %q playbooks %v", cfg.Data, cfg.Playbooks)
	}
	var d detector.Config
	if err := config.Decode(cfg.File, "detector", &cfg.Detector, &d); err != nil || !d.Enabled {
		t.Errorf("detector section: %v enabled=%v", err, d.Enabled)
	}
	var dk docker.Config
	if err := config.Decode(cfg.File, "docker", cfg.Section("docker"), &dk); err != nil {
		t.Errorf("docker section: %v", err)
	}
	// Everything serve builds before it listens: store, integrations,
	// detector (rules loaded, kernel untouched), capture, engine; Build
	// fails when a playbook action has no integration.
	cfg.Data = t.TempDir()
	a, err := Build(cfg, NewLogger(cfg, io.Discard))
	if err != nil {
		t.Fatalf("the example config cannot run the example playbooks:\n%v", err)
	}
	defer a.Close()
	if a.Detector == nil || a.Integrations.Runners["capture.start"] == nil || a.Integrations.Runners["slack.notify"] == nil {
		t.Errorf("detector %v, capture.start and slack.notify (log fallback) runners: %v", a.Detector != nil, a.Integrations.Runners)
	}
}

// TestExamplePlaybooksNameDetectorRules: every exact rule name the example
// playbooks match is a rule of the default detection rules, so that a
// rename on either side is caught here, not in an incident.
func TestExamplePlaybooksNameDetectorRules(t *testing.T) {
	files, err := rules.ReadPaths("../../../examples/rules")
	if err != nil {
		t.Fatal(err)
	}
	rs, err := rules.Compile(files...)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, r := range rs.Rules() {
		known[r.Name] = true
	}
	set, err := playbooks.Load(integrations.Catalog(), "../../../examples/playbooks")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range set.Playbooks() {
		for _, name := range b.Match.Rules {
			if strings.ContainsAny(name, "*?") {
				continue
			}
			if !known[name] {
				t.Errorf("playbook %s matches rule %q, which the default rules do not have", b.Name, name)
			}
		}
	}
}
