package detector_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/guard"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// enforcedRule kills a marker program (riposte-mark), a script whose first act is to write
// /tmp/marker, when a container execs it.
// Each test enforcing in its own mode has a marker of its own: enforcers
// of other packages' tests arm every unprotected container too.
func enforcedRule(marker string) string {
	return strings.ReplaceAll(enforcedRuleTemplate, "riposte-mark", marker)
}

const enforcedRuleTemplate = `
- rule: Marker program in container
  desc: A program that must never run in a container.
  condition: evt.type == "exec" and container.id != "host" and proc.name == "riposte-mark"
  output: marker program ran (proc=%proc.name container=%container.id)
  priority: Critical
  enforce: sigkill
`

// installMarker writes the marker program into container id, without
// running anything there.
func installMarker(t *testing.T, cli *client.Client, id, marker string) {
	t.Helper()
	testutil.CopyFile(t, cli, id, "/bin/"+marker, 0o755, []byte("#!/bin/sh\necho ran > /tmp/marker\n"))
}

// protectedBy is what docker.Responder.Protected answers, reduced to the
// protect label, for a detector on its own.
func protectedBy(cli *client.Client) detector.ProtectedFunc {
	label := guard.ParseLabel("riposte.protect=true")
	return func(ctx context.Context, id string) (bool, string, error) {
		info, err := cli.ContainerInspect(ctx, id)
		if err != nil {
			return false, "", err
		}
		if info.Config != nil && label.Matches(info.Config.Labels) {
			return true, "label riposte.protect=true", nil
		}
		return false, "", nil
	}
}

func startEnforcing(t *testing.T, cli *client.Client, enf detector.EnforceConfig, marker string) (*detector.Detector, *alerts) {
	t.Helper()
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "enforce.yaml"), []byte(enforcedRule(marker)), 0o644); err != nil {
		t.Fatal(err)
	}
	enf.Enabled = true
	cfg := detector.Config{Rules: []string{dir}, DisableResources: true, Enforce: enf}
	return startDetectorWith(t, cfg, detector.Deps{Docker: cli, Protected: protectedBy(cli)})
}

// armedContainer starts a container with the marker program installed and
// waits until the detector armed (or, protected, refused to arm) it.
func armedContainer(t *testing.T, cli *client.Client, d *detector.Detector, labels map[string]string, marker string) string {
	t.Helper()
	id := testutil.RunContainer(t, cli, testutil.UniqueName("det-enforce"), labels)
	installMarker(t, cli, id, marker)
	testutil.Eventually(t, 10*time.Second, func() bool {
		armed, why := d.EnforcementArmed(id[:12])
		return armed || strings.HasPrefix(why, "protected")
	}, "container %s neither armed nor found protected", id[:12])
	return id
}

// alertFor waits for the rule's alert about container id.
func alertFor(t *testing.T, got *alerts, id string) alert.Alert {
	t.Helper()
	var found alert.Alert
	testutil.Eventually(t, 5*time.Second, func() bool {
		for _, a := range got.snapshot() {
			if a.Rule == "Marker program in container" && a.Field("container.id") == id[:12] {
				found = a
				return true
			}
		}
		return false
	}, "no alert for the marker in %s; alerts: %v", id[:12], ruleNames(got.snapshot()))
	return found
}

// TestEnforceKill: a rule marked `enforce: sigkill` kills the marker
// program before it runs (its marker file never appears) in an armed
// container, and the alert says so; a protected container is not
// signalled; another program in the armed container runs.
func TestEnforceKill(t *testing.T) {
	cli := testutil.DockerClient(t)
	d, got := startEnforcing(t, cli, detector.EnforceConfig{}, "riposte-mark")

	t.Run("armed container", func(t *testing.T) {
		id := armedContainer(t, cli, d, nil, "riposte-mark")
		if code := testutil.ExecCode(t, cli, id, "/bin/riposte-mark"); code != 128+9 {
			t.Fatalf("marker exit code %d, want %d (SIGKILL)", code, 128+9)
		}
		if code := testutil.ExecCode(t, cli, id, "test", "-e", "/tmp/marker"); code == 0 {
			t.Fatal("the killed marker program wrote /tmp/marker: it ran")
		}
		a := alertFor(t, got, id)
		if a.Field(detector.FieldEnforceOutcome) != "signalled" || a.Field(detector.FieldEnforceSignal) != "SIGKILL" ||
			!strings.Contains(a.Output, "enforced: signal SIGKILL sent to pid ") || !strings.Contains(a.Output, "exe /bin/riposte-mark") {
			t.Fatalf("alert does not say the marker was killed: output %q fields %v", a.Output, a.OutputFields)
		}
		if st := d.Stats().Enforce; st.Signalled < 1 || st.Matched < 1 {
			t.Fatalf("enforcement counters %+v, want a signal counted", st)
		}
	})
	t.Run("other program", func(t *testing.T) {
		id := armedContainer(t, cli, d, nil, "riposte-mark")
		if code := testutil.ExecCode(t, cli, id, "touch", "/tmp/other"); code != 0 {
			t.Fatalf("a program no rule enforces ended with %d", code)
		}
		if code := testutil.ExecCode(t, cli, id, "test", "-e", "/tmp/other"); code != 0 {
			t.Fatal("a program no rule enforces did not run")
		}
	})
	t.Run("protected container", func(t *testing.T) {
		id := armedContainer(t, cli, d, map[string]string{"riposte.protect": "true"}, "riposte-mark")
		if code := testutil.ExecCode(t, cli, id, "/bin/riposte-mark"); code != 0 {
			t.Fatalf("marker in a protected container ended with %d, want 0", code)
		}
		if code := testutil.ExecCode(t, cli, id, "test", "-e", "/tmp/marker"); code != 0 {
			t.Fatal("the marker program did not run in the protected container")
		}
		a := alertFor(t, got, id)
		if a.Field(detector.FieldEnforceOutcome) != detector.OutcomeProtected || !strings.Contains(a.Output, "not enforced: protected container") {
			t.Fatalf("alert does not say the container is protected: output %q fields %v", a.Output, a.OutputFields)
		}
	})
}

// TestEnforceDryRun: in dry run the marker runs, and the alert says what
// would have been sent.
func TestEnforceDryRun(t *testing.T) {
	cli := testutil.DockerClient(t)
	d, got := startEnforcing(t, cli, detector.EnforceConfig{DryRun: true}, "riposte-dry")
	id := armedContainer(t, cli, d, nil, "riposte-dry")
	if code := testutil.ExecCode(t, cli, id, "/bin/riposte-dry"); code != 0 {
		t.Fatalf("marker in dry run ended with %d, want 0", code)
	}
	if code := testutil.ExecCode(t, cli, id, "test", "-e", "/tmp/marker"); code != 0 {
		t.Fatal("the marker program did not run in dry run")
	}
	a := alertFor(t, got, id)
	if a.Field(detector.FieldEnforceOutcome) != "dry_run" || !strings.Contains(a.Output, "dry run: signal SIGKILL would have been sent to pid ") {
		t.Fatalf("alert does not report the dry run: output %q fields %v", a.Output, a.OutputFields)
	}
	if st := d.Stats().Enforce; st.DryRun < 1 || st.Signalled != 0 {
		t.Fatalf("enforcement counters %+v, want a dry run and no signal", st)
	}
}

// TestEnforceArmsRunningContainers: a container that was running, idle,
// before the detector started is armed at start, so the first program
// exec'd in it is already enforced.
func TestEnforceArmsRunningContainers(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF)
	id := testutil.RunContainer(t, cli, testutil.UniqueName("det-enforce-idle"), nil)
	installMarker(t, cli, id, "riposte-mark")
	d, got := startEnforcing(t, cli, detector.EnforceConfig{}, "riposte-mark")
	testutil.Eventually(t, 10*time.Second, func() bool { armed, _ := d.EnforcementArmed(id); return armed },
		"the running container %s was not armed at start", id[:12])
	if code := testutil.ExecCode(t, cli, id, "/bin/riposte-mark"); code != 128+9 {
		t.Fatalf("marker exit code %d, want %d (SIGKILL)", code, 128+9)
	}
	if code := testutil.ExecCode(t, cli, id, "test", "-e", "/tmp/marker"); code == 0 {
		t.Fatal("the killed marker program wrote /tmp/marker: it ran")
	}
	if a := alertFor(t, got, id); a.Field(detector.FieldEnforceOutcome) != "signalled" {
		t.Fatalf("alert output %q fields %v, want outcome signalled", a.Output, a.OutputFields)
	}
}
