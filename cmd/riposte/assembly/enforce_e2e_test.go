package assembly

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestServeEnforcesInKernel: riposte serve with detector.enforce enabled
// and a rule marked `enforce: sigkill` kills the marker program exec'd in
// a container before it writes its file, and journals action.enforced; in
// a container the docker integration protects, the marker runs and
// nothing is journaled as enforced.
func TestServeEnforcesInKernel(t *testing.T) {
	cli := testutil.DockerClient(t)
	testutil.Integration(t, testutil.Root, testutil.BPF)
	dir, err := os.MkdirTemp("", "enforce")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	files := map[string]string{
		"rules.yaml": `
- rule: Marker program in container
  desc: A program that must never run in a container.
  condition: evt.type == "exec" and container.id != "host" and proc.name == "riposte-e2e"
  output: marker program ran (container=%container.id)
  priority: Critical
  enforce: sigkill
`,
		"pb.yaml": `
- playbook: note-marker
  match: {rules: ["Marker program in container"]}
  actions:
    - do: journal.note
      with: {text: 'marker in {{ .Field "container.id" }}'}
`,
		"riposte.yaml": "listen: 127.0.0.1:0\ndata: data\nplaybooks: [pb.yaml]\nnotifiers: {fallback: log}\n" +
			"detector: {enabled: true, disable_resources: true, rules: [rules.yaml], enforce: {enabled: true}}\n" +
			"docker: {protect: {label: riposte.protect=true}}\n",
	}
	a := serveIn(t, dir, files)

	run := func(labels map[string]string) string {
		id := testutil.RunContainer(t, cli, testutil.UniqueName("serve-enforce"), labels)
		testutil.CopyFile(t, cli, id, "/bin/riposte-e2e", 0o755, []byte("#!/bin/sh\necho ran > /tmp/marker\n"))
		testutil.Eventually(t, 10*time.Second, func() bool {
			armed, why := a.Detector.EnforcementArmed(id)
			return armed || strings.HasPrefix(why, "protected")
		}, "container %s neither armed nor found protected", id[:12])
		return id
	}
	enforced := func(id string) []store.Entry {
		es, err := a.Store.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.ActionEnforced}})
		if err != nil {
			t.Fatal(err)
		}
		var out []store.Entry
		for _, e := range es {
			if e.Detail["container"] == id[:12] {
				out = append(out, e)
			}
		}
		return out
	}
	notes := func(id string) int {
		es, err := a.Store.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.Note}})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Detail["text"] == "marker in "+id[:12] {
				n++
			}
		}
		return n
	}

	killed := run(nil)
	if code := testutil.ExecCode(t, cli, killed, "/bin/riposte-e2e"); code != 128+9 {
		t.Fatalf("marker exit code %d, want %d (SIGKILL)", code, 128+9)
	}
	if code := testutil.ExecCode(t, cli, killed, "test", "-e", "/tmp/marker"); code == 0 {
		t.Fatal("the killed marker program wrote /tmp/marker: it ran")
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return len(enforced(killed)) == 1 && notes(killed) == 1 },
		"no action.enforced entry and playbook note for %s", killed[:12])
	e := enforced(killed)[0]
	if e.Detail["outcome"] != "signalled" || e.Detail["signal"] != "SIGKILL" || e.Detail["exe"] != "/bin/riposte-e2e" || e.Actor != "detector" {
		t.Fatalf("action.enforced entry %+v", e)
	}

	protected := run(map[string]string{"riposte.protect": "true"})
	if code := testutil.ExecCode(t, cli, protected, "/bin/riposte-e2e"); code != 0 {
		t.Fatalf("marker in a protected container ended with %d, want 0", code)
	}
	if code := testutil.ExecCode(t, cli, protected, "test", "-e", "/tmp/marker"); code != 0 {
		t.Fatal("the marker did not run in the protected container")
	}
	// The playbook's note shows the alert was processed; by then an
	// enforcement entry would be in the same transaction.
	testutil.Eventually(t, 10*time.Second, func() bool { return notes(protected) == 1 }, "the protected container's alert was not processed")
	if es := enforced(protected); len(es) != 0 {
		t.Fatalf("a protected container's exec was journaled as enforced: %+v", es)
	}
}
