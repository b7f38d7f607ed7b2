package docker

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	src := `
host: unix:///run/docker.sock
data_dir: /var/lib/riposte
protect:
  label: example.com/keep
  names: [riposte, "kube-*"]
  images: ["postgres:*"]
  self_id: 0123456789ab
snapshot:
  max_bytes: 50MiB
  log_lines: 200
timeouts:
  api: 5s
  snapshot: 2m
pause: freezer
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	want := Config{
		Host: "unix:///run/docker.sock", DataDir: "/var/lib/riposte",
		Protect:  ProtectConfig{Label: "example.com/keep", Names: []string{"riposte", "kube-*"}, Images: []string{"postgres:*"}, SelfID: "0123456789ab"},
		Snapshot: SnapshotConfig{MaxBytes: 50 << 20, LogLines: 200},
		Timeouts: TimeoutConfig{API: 5 * time.Second, Snapshot: 2 * time.Minute},
	}
	if cfg.Host != want.Host || cfg.DataDir != want.DataDir || cfg.Protect.Label != want.Protect.Label ||
		strings.Join(cfg.Protect.Names, ",") != "riposte,kube-*" || strings.Join(cfg.Protect.Images, ",") != "postgres:*" ||
		cfg.Protect.SelfID != want.Protect.SelfID || cfg.Snapshot != want.Snapshot || cfg.Timeouts != want.Timeouts ||
		cfg.Pause != PauseFreezer {
		t.Errorf("decoded %+v\nwant %+v", cfg, want)
	}

	if err := yaml.Unmarshal([]byte("snapshot: {max_bytes: 1048576}"), &cfg); err != nil || cfg.Snapshot.MaxBytes != 1<<20 {
		t.Errorf("plain byte count: got %d, %v", cfg.Snapshot.MaxBytes, err)
	}
	if err := yaml.Unmarshal([]byte("snapshot: {max_bytes: lots}"), &cfg); err == nil {
		t.Error("max_bytes: lots: want an error")
	}
	if err := yaml.Unmarshal([]byte("pause: cgroup"), &cfg); err == nil || !strings.Contains(err.Error(), `want docker or freezer, got "cgroup"`) {
		t.Errorf("pause: cgroup: want an error naming the choices, got %v", err)
	}
	dec = yaml.NewDecoder(strings.NewReader("protect: {lable: x}"))
	dec.KnownFields(true)
	if err := dec.Decode(&Config{}); err == nil {
		t.Error("unknown key protect.lable: want an error")
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg := Config{DataDir: "/d"}.withDefaults()
	if cfg.EvidenceDir != "/d/evidence" || cfg.Protect.Label != DefaultProtectLabel ||
		cfg.Snapshot.MaxBytes != 1<<30 || cfg.Snapshot.LogLines != 1000 ||
		cfg.Timeouts.API != 30*time.Second || cfg.Timeouts.Snapshot != 10*time.Minute || cfg.Pause != PauseDocker {
		t.Errorf("defaults: %+v", cfg)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the joined error; none: valid
	}{
		{"minimal", Config{DataDir: "d"}, nil},
		{"no data dir", Config{}, []string{"data_dir: required"}},
		{"bad globs collected", Config{DataDir: "d", Protect: ProtectConfig{Names: []string{"ok", "[bad"}, Images: []string{""}}},
			[]string{`protect.names[1]: bad glob pattern "[bad"`, `protect.images[0]: bad glob pattern ""`}},
		{"label without key", Config{DataDir: "d", Protect: ProtectConfig{Label: "=true"}}, []string{"protect.label"}},
		{"self id not hex", Config{DataDir: "d", Protect: ProtectConfig{SelfID: "riposte"}}, []string{"protect.self_id"}},
		{"pause freezer", Config{DataDir: "d", Pause: PauseFreezer}, nil},
		{"pause unknown", Config{DataDir: "d", Pause: "runc"}, []string{`pause: want docker or freezer, got "runc"`}},
		{"negatives", Config{DataDir: "d", Snapshot: SnapshotConfig{MaxBytes: -1, LogLines: -2}, Timeouts: TimeoutConfig{API: -time.Second, Snapshot: -time.Second}},
			[]string{"snapshot.max_bytes", "snapshot.log_lines", "timeouts.api", "timeouts.snapshot"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %q, got none", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestByteSizeString(t *testing.T) {
	tests := []struct {
		in   ByteSize
		want string
	}{
		{1 << 30, "1GiB"}, {64 << 10, "64KiB"}, {3 << 20, "3MiB"}, {1000, "1000 bytes"}, {1536, "1536 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Errorf("ByteSize(%d) = %q, want %q", int64(tc.in), got, tc.want)
			}
		})
	}
}
