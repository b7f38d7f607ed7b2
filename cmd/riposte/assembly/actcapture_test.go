package assembly

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/detector"
	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

func TestDetectorEnabled(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"no section", ""},
		{"off", "enabled: false\nsample_interval: 2s\n"},
		{"on", "enabled: true\n"},
		{"other keys", "rules: [a.yaml]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			if tt.yaml != "" {
				var doc yaml.Node
				if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
					t.Fatal(err)
				}
				n = *doc.Content[0]
			}
			before := len(n.Content)
			on := detectorEnabled(n)
			var out struct {
				Enabled bool     `yaml:"enabled"`
				Rules   []string `yaml:"rules"`
			}
			if err := on.Decode(&out); err != nil || !out.Enabled {
				t.Fatalf("decode %+v: %v", out, err)
			}
			if strings.Contains(tt.yaml, "rules") && len(out.Rules) != 1 {
				t.Errorf("other keys lost: %+v", out)
			}
			if len(n.Content) != before {
				t.Errorf("the config's own section changed")
			}
		})
	}
	var c detector.Config
	if err := config.Decode("riposte.yaml", "detector", ptr(detectorEnabled(yaml.Node{})), &c); err != nil || !c.Enabled {
		t.Errorf("detector config %+v: %v", c, err)
	}
}

func ptr[T any](v T) *T { return &v }

// TestActCaptureWithoutServer: `riposte act capture.start` with no server
// on the data directory runs the detector itself for the capture's
// duration and returns the sealed capture, journaled.
func TestActCaptureWithoutServer(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	testutil.Tools(t, "docker")
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)
	name := testutil.UniqueName("act-capture")
	id := testutil.RunContainer(t, cli, name, nil)
	cfg, err := LoadConfig("", Overrides{Data: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}

	// Something to record: a command run in the container again and
	// again until the capture ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	execs := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := exec.CommandContext(ctx, "docker", "exec", name, "cat", "/etc/hostname").Run(); err != nil && ctx.Err() == nil {
				execs <- err
				return
			}
		}
		execs <- nil
	}()
	res, how, err := Act(context.Background(), cfg, ActRequest{Action: "capture.start", Container: name,
		With: map[string]any{"duration": "3s"}})
	cancel()
	if err != nil {
		t.Fatalf("act (%s): %v", how, err)
	}
	if xerr := <-execs; xerr != nil {
		t.Fatalf("docker exec: %v", xerr)
	}
	if !strings.Contains(how, "in-process detector") || res.SHA256 == "" {
		t.Fatalf("result %+v (%s): want the sealed capture's manifest hash, recorded by an in-process detector", res, how)
	}
	var syscalls string
	for _, e := range res.Evidence {
		if filepath.Base(e.Path) == "syscalls.jsonl.gz" {
			syscalls = e.Path
		}
	}
	if syscalls == "" {
		t.Fatalf("evidence %+v lacks syscalls.jsonl.gz", res.Evidence)
	}
	r, f, err := capfile.Open(syscalls)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h := r.Header(); h.Container.ID != id {
		t.Errorf("capture of %s, want %s", h.Container.ID, id)
	}
	cat := false
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if rec.Event != nil && rec.Event.Type == event.Exec && rec.Event.Comm == "cat" {
			cat = true
		}
	}
	if !cat {
		t.Errorf("the capture holds no exec of cat")
	}

	st, err := store.Open(store.PathIn(cfg.Data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.CaptureFinished, store.ActionSucceeded}})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range es {
		if e.Actor == "cli:"+OSUser() && e.SHA256 == res.SHA256 {
			types = append(types, string(e.Type))
		}
	}
	if len(types) != 2 {
		t.Errorf("journal has %q by cli:%s with the capture's hash, want capture.finished and action.succeeded", types, OSUser())
	}
}

// TestActCaptureNoWaitNeedsServer: without a server, act records until the
// capture ends; asking it not to wait is refused before anything starts.
func TestActCaptureNoWaitNeedsServer(t *testing.T) {
	cfg, err := LoadConfig("", Overrides{Data: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []any{"false", false, "maybe"} {
		_, _, err := Act(context.Background(), cfg, ActRequest{Action: "capture.start", Container: "web", With: map[string]any{"wait": w}})
		if err == nil || !strings.Contains(err.Error(), "wait=false needs a running riposte serve") {
			t.Errorf("wait=%v: err %v", w, err)
		}
	}
}

// TestActCaptureInterrupted: ctx ending (Ctrl-C) stops the capture early;
// it is sealed and its end journaled all the same.
func TestActCaptureInterrupted(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)
	name := testutil.UniqueName("act-capture-int")
	testutil.RunContainer(t, cli, name, nil)
	cfg, err := LoadConfig("", Overrides{Data: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type outcome struct {
		res actions.Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, _, err := Act(ctx, cfg, ActRequest{Action: "capture.start", Container: name, With: map[string]any{"duration": "10m"}})
		done <- outcome{res, err}
	}()
	testutil.Eventually(t, 30*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(cfg.Data, "evidence", "manual", "*", "capture-*", "syscalls.jsonl.gz"))
		return len(m) == 1
	}, "the capture did not start")
	cancel()
	var o outcome
	select {
	case o = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("act did not return after its context ended")
	}
	if o.err != nil || o.res.SHA256 == "" || !strings.Contains(o.res.Note, "(stopped)") {
		t.Fatalf("result %+v, %v: want the capture stopped and sealed", o.res, o.err)
	}
	st, err := store.Open(store.PathIn(cfg.Data), store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, err := st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.CaptureFinished, store.ActionSucceeded}})
	if err != nil || len(es) != 2 {
		t.Errorf("journal %+v (%v): want capture.finished and action.succeeded", es, err)
	}
}

// TestLocalTopCapture: `c` in riposte top without a server records from
// top's own detector; the store stays with top until it exits, so a pause
// pressed meanwhile goes through the same app, and the capture's end is
// journaled as the terminal user's.
func TestLocalTopCapture(t *testing.T) {
	testutil.Integration(t, testutil.Root, testutil.BPF, testutil.Docker)
	cli := testutil.DockerClient(t)
	testutil.EnsureTestImage(t, cli)
	name := testutil.UniqueName("top-capture")
	testutil.RunContainer(t, cli, name, nil)
	cfg, err := LoadConfig("", Overrides{Data: filepath.Join(t.TempDir(), "data")})
	if err != nil {
		t.Fatal(err)
	}
	d, err := detector.New(detector.Config{Enabled: true, DisableResources: true}, detector.Deps{Docker: cli})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx, func(alert.Alert) {}) }()
	t.Cleanup(func() { cancel(); <-ran })
	select {
	case <-d.Ready():
	case err := <-ran:
		t.Fatalf("detector: %v", err)
	}

	l := &localTop{cfg: cfg, user: "jane", det: d}
	note, err := l.Act(context.Background(), console.Request{Action: "capture.start", Container: name, With: map[string]string{"duration": "2s"}})
	if err != nil {
		t.Fatalf("capture from top: %v", err)
	}
	if err := exec.Command("docker", "exec", name, "cat", "/etc/hostname").Run(); err != nil {
		t.Fatal(err)
	}
	if note, err := l.Act(context.Background(), console.Request{Action: "container.pause", Container: name}); err != nil {
		t.Fatalf("pause while top holds the store for the capture (%s): %v", note, err)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "unpause", name).Run() })
	journal := func() []store.Entry {
		st, err := store.Open(store.PathIn(cfg.Data), store.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		es, err := st.Entries(context.Background(), store.Filter{Types: []store.EntryType{store.CaptureFinished, store.ActionSucceeded}})
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	testutil.Eventually(t, 20*time.Second, func() bool {
		for _, e := range journal() {
			if e.Type == store.CaptureFinished {
				return true
			}
		}
		return false
	}, "the capture's end journaled (started: %s)", note)
	l.close()
	var got []string
	for _, e := range journal() {
		got = append(got, string(e.Type)+" "+e.Action+" "+e.Actor)
		if e.Type == store.CaptureFinished && e.SHA256 == "" {
			t.Errorf("capture.finished without the manifest's hash: %+v", e)
		}
	}
	for _, want := range []string{"capture.finished capture.start cli:jane", "action.succeeded container.pause cli:jane"} {
		if !strings.Contains(strings.Join(got, "\n"), want) {
			t.Errorf("journal lacks %q:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
