package capture

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/config"
)

// TestConfigYAML: the capture: section decodes strictly, sizes and
// durations in their human forms.
func TestConfigYAML(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want Config
		err  string
	}{
		{name: "full", yaml: "evidence_dir: /var/lib/riposte/evidence\nmax_duration: 5m\nmax_bytes: 512MiB\nevent_buffer: 4096\nsnaplen: 65535\nmax_running: 4\n",
			want: Config{EvidenceDir: "/var/lib/riposte/evidence", MaxDuration: 5 * time.Minute, MaxBytes: 512 << 20, EventBuffer: 4096, Snaplen: 65535, MaxRunning: 4}},
		{name: "bytes as number", yaml: "evidence_dir: e\nmax_bytes: 1048576\n", want: Config{EvidenceDir: "e", MaxBytes: 1 << 20}},
		{name: "unknown key", yaml: "evidence_dir: e\nmax_size: 1GiB\n", err: "max_size"},
		{name: "bad size", yaml: "max_bytes: lots\n", err: "want a size such as 1048576, 512KiB or 50MB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			var got Config
			err := config.Decode("riposte.yaml", "capture", doc.Content[0], &got)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("= %+v, want %+v", got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("validate: %v", err)
			}
		})
	}
	if d := (Config{EvidenceDir: "e"}).withDefaults(); d.MaxDuration != DefaultMaxDuration || d.MaxBytes != DefaultMaxBytes || d.EventBuffer != DefaultEventBuffer || d.Snaplen != DefaultSnaplen || d.MaxRunning != DefaultMaxRunning {
		t.Errorf("defaults = %+v", d)
	}
}
