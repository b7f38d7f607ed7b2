package assembly

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/store/postgres"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
)

// ciConfig is the built-in ci-guard playbook limited to this test's
// container (name, from testutil.UniqueName): other packages' tests, and
// other checkouts', run containers (and shells) on the same daemon at the
// same time, and must not be contained by this one.
func ciConfig(t *testing.T, name string) config.Config {
	t.Helper()
	cfg, err := config.Parse("ci.yaml", []byte("detector:\n  enabled: true\n  disable_resources: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.Data = filepath.Join(dir, "data")
	pb := strings.Replace(CIPlaybook, `when: 'container.id != "" && container.id != "host"'`, `when: 'container.name == "`+name+`"'`, 1)
	if pb == CIPlaybook {
		t.Fatal("the built-in playbook changed; update the test's restriction")
	}
	cfg.Playbooks = []string{filepath.Join(dir, "ci-guard.yaml")}
	if err := os.WriteFile(cfg.Playbooks[0], []byte(pb), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestCIPlaybookMatchesContainersOnly: the built-in playbook loads, takes
// any container alert of Warning or above, and leaves host alerts alone.
func TestCIPlaybookMatchesContainersOnly(t *testing.T) {
	set, err := playbooks.Parse(integrations.Catalog(), playbooks.Source{Name: "ci", Data: []byte(CIPlaybook)})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(p alert.Priority, container string) *alert.Alert {
		return &alert.Alert{ID: "x", Rule: "any", Priority: p, OutputFields: map[string]any{"container.id": container}}
	}
	for _, tc := range []struct {
		a    *alert.Alert
		want int
	}{
		{mk(alert.PriorityWarning, "3f9a1c2b7d4e"), 1},
		{mk(alert.PriorityCritical, "3f9a1c2b7d4e"), 1},
		{mk(alert.PriorityNotice, "3f9a1c2b7d4e"), 0},
		{mk(alert.PriorityCritical, "host"), 0},
		{mk(alert.PriorityCritical, ""), 0},
	} {
		plans := set.Match(tc.a)
		if len(plans) != tc.want {
			t.Errorf("%v in %q: %d plans, want %d", tc.a.Priority, tc.a.Field("container.id"), len(plans), tc.want)
		}
		if len(plans) == 1 && len(plans[0].Actions) != 3 {
			t.Errorf("actions %+v", plans[0].Actions)
		}
	}
}

func inspect(t *testing.T, cli *client.Client, id string) (paused bool, networks int) {
	t.Helper()
	info, err := cli.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Paused, len(info.NetworkSettings.Networks)
}

// TestCIFailsAMisbehavingJob: the job's command passes, but a container
// reads /etc/shadow from a shell while it runs, so riposte ci contains it
// and exits with ExitIncidents; the reports say why.
func TestCIFailsAMisbehavingJob(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("ci-test-bad")
	id := testutil.RunContainer(t, cli, name, nil)
	var out bytes.Buffer
	cfg := ciConfig(t, name)
	rep, code, err := RunCI(context.Background(), cfg, CIOptions{
		Command: []string{"docker", "exec", name, "sh", "-c", "cat /etc/shadow >/dev/null; echo tests passed"},
		Stdout:  &out, Stderr: &out,
	})
	if err != nil {
		t.Fatalf("RunCI: %v\n%s", err, out.String())
	}
	if code != ExitIncidents || rep.ExitCode != 0 {
		t.Fatalf("exit %d (command %d), want %d\n%s", code, rep.ExitCode, ExitIncidents, out.String())
	}
	if !strings.Contains(out.String(), "tests passed") {
		t.Errorf("the command's output did not reach stdout:\n%s", out.String())
	}
	rules := map[string]bool{}
	for _, in := range rep.Incidents {
		rules[in.Rule] = true
		if in.ContainerID != id[:12] || in.Container != name {
			t.Errorf("incident attributed to %s (%s), want %s", in.ContainerID, in.Container, id[:12])
		}
	}
	if !rules["Read sensitive file untrusted"] {
		t.Errorf("no sensitive-file incident: %+v", rep.Incidents)
	}
	if paused, nets := inspect(t, cli, id); !paused || nets != 0 {
		t.Errorf("container paused=%v networks=%d, want paused and cut off; incidents: %+v\n%s", paused, nets, rep.Incidents, out.String())
	}
	files, err := rep.WriteFiles(filepath.Join(t.TempDir(), "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back CIReport
	js, _ := os.ReadFile(files[0])
	if err := json.Unmarshal(js, &back); err != nil || len(back.Incidents) != len(rep.Incidents) {
		t.Errorf("JSON report: %v %s", err, js)
	}
	var suites junitSuites
	x, _ := os.ReadFile(files[1])
	if err := xml.Unmarshal(x, &suites); err != nil || suites.Suites[0].Failures != len(rep.Incidents) {
		t.Errorf("JUnit report: %v %s", err, x)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "failing the job (exit 86)") || !strings.Contains(text.String(), "container.pause") {
		t.Errorf("summary:\n%s", text.String())
	}
}

// TestCIPassesACleanJob: nothing suspicious happens, so riposte ci exits
// with the command's own status and touches nothing.
func TestCIPassesACleanJob(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("ci-test-good")
	id := testutil.RunContainer(t, cli, name, nil)
	for _, tc := range []struct {
		applet string
		want   int
	}{{"true", 0}, {"false", 1}} {
		var out bytes.Buffer
		cmd := []string{"docker", "exec", name, tc.applet}
		rep, code, err := RunCI(context.Background(), ciConfig(t, name), CIOptions{Command: cmd, Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatalf("RunCI: %v\n%s", err, out.String())
		}
		if code != tc.want || len(rep.Incidents) != 0 {
			t.Fatalf("%s: exit %d with %d incidents, want %d and none: %+v\n%s", tc.applet, code, len(rep.Incidents), tc.want, rep.Incidents, out.String())
		}
	}
	if paused, nets := inspect(t, cli, id); paused || nets == 0 {
		t.Errorf("clean job touched the container: paused=%v networks=%d", paused, nets)
	}
}

// TestCIReleaseUndoesContainment: with --release the offending container is
// reconnected and unpaused once the report is written; the job still fails.
func TestCIReleaseUndoesContainment(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	name := testutil.UniqueName("ci-test-release")
	id := testutil.RunContainer(t, cli, name, nil)
	var out bytes.Buffer
	rep, code, err := RunCI(context.Background(), ciConfig(t, name), CIOptions{
		Command: []string{"docker", "exec", name, "cat", "/etc/shadow"},
		Stdout:  &out, Stderr: &out, Release: true,
	})
	if err != nil {
		t.Fatalf("RunCI: %v\n%s", err, out.String())
	}
	if code != ExitIncidents || !rep.Released || len(rep.Incidents) == 0 {
		t.Fatalf("exit %d, released %v, incidents %d\n%s", code, rep.Released, len(rep.Incidents), out.String())
	}
	if paused, nets := inspect(t, cli, id); paused || nets == 0 {
		t.Errorf("after --release: paused=%v networks=%d, want running and connected", paused, nets)
	}
}

// TestCIReportNamesTheJournal: the closing hint points at the journal where
// it is: the data directory for SQLite, the store (password redacted) for
// PostgreSQL.
func TestCIReportNamesTheJournal(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  CIReport
		want string
	}{
		{"sqlite", CIReport{DataDir: "/tmp/ci-data", Incidents: []CIIncident{{ID: "inc-1"}}},
			"evidence and journal in /tmp/ci-data (riposte journal show --data /tmp/ci-data)"},
		{"postgres", CIReport{DataDir: "/tmp/ci-data", Store: postgres.Redact("postgres://ci:s3cret@db:5432/riposte"), Incidents: []CIIncident{{ID: "inc-1"}}},
			"evidence in /tmp/ci-data, journal in postgres://ci:xxxxx@db:5432/riposte (riposte journal show --store URL)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			tc.rep.WriteText(&b)
			if !strings.Contains(b.String(), tc.want) || strings.Contains(b.String(), "s3cret") {
				t.Errorf("report:\n%s\nwant %q", b.String(), tc.want)
			}
		})
	}
}
