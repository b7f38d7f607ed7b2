package containerd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // every line of the joined error; nil: valid
	}{
		{"defaults", Config{DataDir: "/var/lib/riposte"}, nil},
		{"moby and k8s.io", Config{DataDir: "/d", Namespaces: []string{"k8s.io", "moby"}, Address: "/var/run/docker/containerd/containerd.sock"}, nil},
		{"evidence dir alone", Config{EvidenceDir: "/e"}, nil},
		{"quarantine allow-list", Config{DataDir: "/d", Quarantine: QuarantineConfig{Allow: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"}}}, nil},
		{"no data dir", Config{}, []string{"data_dir: required (snapshots are written under it)"}},
		{"everything wrong", Config{
			DataDir: "/d", Address: "unix:///run/containerd/containerd.sock",
			Namespaces: []string{"k8s.io", "bad ns", "k8s.io", "-x"},
			Protect:    ProtectConfig{Label: "=true", Names: []string{"["}, Images: []string{""}},
			Snapshot:   SnapshotConfig{MaxBytes: -1},
			Timeouts:   TimeoutConfig{API: -time.Second, Snapshot: -time.Minute},
			Pause:      "thaw",
			Quarantine: QuarantineConfig{Allow: []string{"10.0.0.0/33", "dns", "fe80::1%eth0/64"}},
		}, []string{
			`address: want the absolute path of containerd's socket, got "unix:///run/containerd/containerd.sock"`,
			`namespaces[1]: invalid containerd namespace "bad ns"`,
			`namespaces[2]: "k8s.io" listed twice`,
			`namespaces[3]: invalid containerd namespace "-x"`,
			`protect.label: want key=value or key, got "=true"`,
			`protect.names[0]: bad glob pattern "["`,
			`protect.images[0]: bad glob pattern ""`,
			`snapshot.max_bytes: must not be negative, got -1`,
			`timeouts.api: must not be negative, got -1s`,
			`timeouts.snapshot: must not be negative, got -1m0s`,
			`quarantine.allow[0]: want a CIDR prefix or an address, got "10.0.0.0/33"`,
			`quarantine.allow[1]: want a CIDR prefix or an address, got "dns"`,
			`quarantine.allow[2]: want a CIDR prefix or an address, got "fe80::1%eth0/64"`,
			`pause: want containerd or freezer, got "thaw"`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != strings.Join(tt.want, "\n") {
				t.Fatalf("Validate() =\n%v\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
		})
	}
	if _, err := New(Config{}, Deps{}); err == nil || !strings.HasPrefix(err.Error(), "containerd responder config: data_dir: required") {
		t.Fatalf("New without data_dir: %v", err)
	}
	if _, err := New(Config{DataDir: "/d"}, Deps{}); err == nil || err.Error() != "containerd responder: no containerd client" {
		t.Fatalf("New without client: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c := Config{DataDir: "/d"}.withDefaults()
	if c.Address != DefaultAddress || strings.Join(c.Namespaces, ",") != "k8s.io" || c.EvidenceDir != "/d/evidence" ||
		c.Protect.Label != "riposte.protect=true" || c.Snapshot.MaxBytes != 1<<30 || c.Timeouts.API != 30*time.Second || c.Pause != PauseContainerd {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestPauseViaUnmarshalText(t *testing.T) {
	tests := []struct{ in, want, wantErr string }{
		{"containerd", "containerd", ""},
		{"freezer", "freezer", ""},
		{" Freezer ", "freezer", ""},
		{"thaw", "", `pause: want containerd or freezer, got "thaw"`},
		{"", "", `pause: want containerd or freezer, got ""`},
	}
	for _, tt := range tests {
		var m PauseVia
		err := m.UnmarshalText([]byte(tt.in))
		if string(m) != tt.want || fmt.Sprint(err) != map[bool]string{true: "<nil>", false: tt.wantErr}[tt.wantErr == ""] {
			t.Errorf("UnmarshalText(%q) = %q, %v; want %q, error %q", tt.in, m, err, tt.want, tt.wantErr)
		}
	}
}

func TestNameOf(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		want   string
	}{
		{"cri container", map[string]string{LabelPodName: "api-7d9f", LabelPodNamespace: "payments", LabelContainerName: "app"}, "payments/api-7d9f/app"},
		{"cri sandbox", map[string]string{LabelPodName: "api-7d9f", LabelPodNamespace: "payments"}, "payments/api-7d9f"},
		{"nerdctl", map[string]string{LabelNerdctlName: "web"}, "web"},
		{"cri wins over nerdctl", map[string]string{LabelPodName: "p", LabelPodNamespace: "n", LabelContainerName: "c", LabelNerdctlName: "web"}, "n/p/c"},
		{"pod name without namespace", map[string]string{LabelPodName: "p"}, ""},
		{"docker's moby namespace (no name label)", map[string]string{"com.example": "x"}, ""},
		{"none", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nameOf(tt.labels); got != tt.want {
				t.Errorf("nameOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRequestRef(t *testing.T) {
	fields := func(kv ...string) alert.Alert {
		f := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			f[kv[i]] = kv[i+1]
		}
		return alert.Alert{OutputFields: f}
	}
	tests := []struct {
		name    string
		req     actions.Request
		want    string
		wantErr string
	}{
		{"explicit", actions.Request{Container: "k8s.io:3f4e8c1a9b2d"}, "k8s.io:3f4e8c1a9b2d", ""},
		{"pod name", actions.Request{Container: "payments/api-7d9f/app"}, "payments/api-7d9f/app", ""},
		{"alert id", actions.Request{Alert: fields("container.id", "3f4e8c1a9b2d")}, "3f4e8c1a9b2d", ""},
		{"alert name", actions.Request{Alert: fields("container.name", "web")}, "web", ""},
		{"host", actions.Request{Alert: fields("container.id", "host")}, "", "the alert is about the host, not a container"},
		{"nothing", actions.Request{}, "", "no container given, and the alert names none (container.id, container.name)"},
		{"space", actions.Request{Container: "a b"}, "", `invalid container reference "a b" (want an id, a short id, a name or namespace:id)`},
		{"leading slash", actions.Request{Container: "/etc"}, "", `invalid container reference "/etc"`},
		{"too long", actions.Request{Container: strings.Repeat("a", 257)}, "", "invalid container reference"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := requestRef(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("requestRef = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("requestRef = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// FuzzCheckRef: a reference taken from an alert is either refused with an
// error or safe to hand to containerd (no space, no control character, not
// absolute, bounded).
func FuzzCheckRef(f *testing.F) {
	for _, s := range []string{"3f4e8c1a9b2d", "k8s.io:abc", "payments/api/app", "", "/x", "a\nb", "ä", strings.Repeat("f", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		if err := checkRef(ref); err != nil {
			if !strings.HasPrefix(err.Error(), "no container given") && !strings.HasPrefix(err.Error(), "invalid container reference") {
				t.Fatalf("error %q does not say what is wrong", err)
			}
			return
		}
		if len(ref) == 0 || len(ref) > 256 || strings.HasPrefix(ref, "/") || strings.ContainsFunc(ref, func(r rune) bool { return r <= ' ' || r > '~' }) {
			t.Fatalf("accepted %q", ref)
		}
	})
}

func TestSpecs(t *testing.T) {
	want := map[string][2]bool{ // destructive, container
		"containerd.pause": {true, true}, "containerd.unpause": {false, true},
		"containerd.kill": {true, true}, "containerd.snapshot": {false, true},
		"containerd.quarantine": {true, true}, "containerd.release": {false, true},
	}
	specs := Specs()
	if len(specs) != len(want) {
		t.Fatalf("%d specs, want %d", len(specs), len(want))
	}
	for _, s := range specs {
		w, ok := want[s.Name]
		if !ok || s.Destructive != w[0] || s.Container != w[1] || len(s.Privileges) == 0 {
			t.Errorf("%s: destructive %v container %v privileges %d; want %v", s.Name, s.Destructive, s.Container, len(s.Privileges), w)
		}
		if s.Releases != (s.Name == ActionRelease) {
			t.Errorf("%s: Releases %v", s.Name, s.Releases)
		}
		verb := strings.TrimPrefix(s.Name, "containerd.")
		if !knownVerb[verb] {
			t.Errorf("%s has no operation in Run", s.Name)
		}
	}
	if p, ok := Specs()[2].Param("signal"); !ok || p.Default != DefaultSignal {
		t.Errorf("kill's signal default: %+v", p)
	}
}
