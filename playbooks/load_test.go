package playbooks

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
)

// TestLoadInvalid loads each file in testdata/invalid and compares the error
// with the "# want:" lines at its top (every error, in order).
func TestLoadInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid cases: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			sc := bufio.NewScanner(bytes.NewReader(data))
			for sc.Scan() {
				if w, ok := strings.CutPrefix(sc.Text(), "# want: "); ok {
					// {known actions} stands for the catalog's names, so
					// that a new integration does not edit these cases.
					want = append(want, strings.ReplaceAll(w, "{known actions}", strings.Join(integrations.Catalog().Names(), ", ")))
				}
			}
			if len(want) == 0 {
				t.Fatal("case has no # want: line")
			}
			_, err = Load(integrations.Catalog(), f)
			if err == nil {
				t.Fatalf("loaded without error, want:\n%s", strings.Join(want, "\n"))
			}
			got := strings.Split(err.Error(), "\n")
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestLoadCollectsAcrossFiles(t *testing.T) {
	_, err := Load(integrations.Catalog(), "testdata/invalid/bad-when.yaml", "testdata/invalid/bad-param.yaml", "testdata/nope.yaml")
	if err == nil {
		t.Fatal("want errors")
	}
	msg := err.Error()
	for _, want := range []string{"bad-when.yaml:4", "bad-param.yaml:6", "bad-param.yaml:8", "testdata/nope.yaml: no such file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestLoadDefaults(t *testing.T) {
	set, err := Parse(integrations.Catalog(), Source{Name: "x.yaml", Data: []byte(`
- playbook: a
  approval: {approvers: [U1]}
  actions:
    - do: container.pause
      gated: true
    - do: container.stop
      with: {grace: 3s}
      on_error: continue
`)})
	if err != nil {
		t.Fatal(err)
	}
	b := set.Playbooks()[0]
	if !b.Continue || b.DryRun || b.Order != 0 {
		t.Errorf("defaults: continue=%v dry_run=%v order=%d", b.Continue, b.DryRun, b.Order)
	}
	if b.Approval.Timeout.String() != "10m0s" || b.Approval.OnTimeout != TimeoutAbort {
		t.Errorf("approval defaults: %+v", b.Approval)
	}
	if b.Actions[0].OnError != ErrorStop || !b.Actions[0].Gated || b.Actions[1].OnError != ErrorContinue {
		t.Errorf("action defaults: %+v", b.Actions)
	}
	if b.File != "x.yaml" || b.Line != 2 || b.Actions[1].Line != 7 {
		t.Errorf("positions: %s:%d, action line %d", b.File, b.Line, b.Actions[1].Line)
	}
}

// TestExamplesLoad: every example playbook file loads.
func TestExamplesLoad(t *testing.T) {
	files, _ := filepath.Glob("../examples/playbooks/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example playbooks")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			set, err := Load(integrations.Catalog(), f)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Playbooks()) == 0 {
				t.Error("no playbooks in file")
			}
		})
	}
	if _, err := Load(integrations.Catalog(), "../examples/playbooks"); err != nil {
		t.Fatalf("load the directory: %v", err)
	}
}
