package playbooks

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/alert"
)

// FuzzParse: any YAML either loads into a set whose playbooks all have a
// name and actions, or is rejected with an error; it never panics, and a
// loaded set can match an alert.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"../examples/playbooks/*.yaml", "testdata/invalid/*.yaml"} {
		files, _ := filepath.Glob(dir)
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	catalog := integrations.Catalog()
	a := testAlert("Terminal shell in container", alert.PriorityWarning, map[string]any{"container.name": "x"}, "container")
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := Parse(catalog, Source{Name: "fuzz.yaml", Data: data})
		if err != nil {
			if set != nil {
				t.Fatal("error with a set")
			}
			return
		}
		for _, b := range set.Playbooks() {
			if b.Name == "" || len(b.Actions) == 0 {
				t.Fatalf("loaded an incomplete playbook: %+v", b)
			}
		}
		set.Match(a)
		set.Test(*a)
	})
}
