package capture

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/riposte-sec/riposte/detector/event"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/responders/capture/capfile"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeDocker knows containers by id and name.
type fakeDocker struct {
	byRef map[string]container.InspectResponse
}

func (f *fakeDocker) ContainerInspect(_ context.Context, ref string) (container.InspectResponse, error) {
	for _, info := range f.byRef {
		if info.ID == ref || strings.TrimPrefix(info.Name, "/") == ref || (len(ref) >= 12 && strings.HasPrefix(info.ID, ref)) {
			return info, nil
		}
	}
	return container.InspectResponse{}, fmt.Errorf("no such container: %s: %w", ref, cerrdefs.ErrNotFound)
}

func running(id, name string, pid int) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Name: "/" + name, Image: "sha256:feed",
			State: &container.State{Running: true, Pid: pid}},
		Config: &container.Config{Image: "riposte-test:1", Labels: map[string]string{"app": "web"}},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"bridge": {IPAddress: "172.17.0.2", Gateway: "172.17.0.1", MacAddress: "02:42:ac:11:00:02"}}},
	}
}

// fakeGuard protects the containers it names.
type fakeGuard map[string]string

func (g fakeGuard) Protected(_ context.Context, ref string) (bool, string, error) {
	r, ok := g[ref]
	return ok, r, nil
}

// fakeEvents behaves like the detector's subscriptions: never blocks,
// counts drops, closes every channel on closeAll.
type fakeEvents struct {
	mu    sync.Mutex
	subs  map[chan event.Event]string
	drops uint64
}

func newFakeEvents() *fakeEvents { return &fakeEvents{subs: map[chan event.Event]string{}} }

func (f *fakeEvents) Subscribe(id string, buf int) (<-chan event.Event, func()) {
	ch := make(chan event.Event, buf)
	f.mu.Lock()
	f.subs[ch] = id
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *fakeEvents) emit(ev event.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch, id := range f.subs {
		if id != ev.Container.ID {
			continue
		}
		select {
		case ch <- ev:
		default:
			f.drops++
		}
	}
}

func (f *fakeEvents) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeEvents) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		close(ch)
		delete(f.subs, ch)
	}
}

func (f *fakeEvents) Losses() (queue, subscriber, kernel uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return 0, f.drops, 0
}

type harness struct {
	c        *Capture
	events   *fakeEvents
	dir      string
	mu       sync.Mutex
	finished []Finished
}

// newHarness captures a fake container "web" whose main process is this
// test process (so that the state header is read from the real /proc).
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{events: newFakeEvents(), dir: t.TempDir()}
	cfg.EvidenceDir = h.dir
	docker := &fakeDocker{byRef: map[string]container.InspectResponse{
		"web":       running(testID, "web", os.Getpid()),
		"db":        running(strings.Repeat("d", 64), "db", os.Getpid()),
		"stopped":   {ContainerJSONBase: &container.ContainerJSONBase{ID: strings.Repeat("5", 64), Name: "/stopped", State: &container.State{}}},
		"protected": running(strings.Repeat("e", 64), "protected", os.Getpid()),
		"ghost":     running(strings.Repeat("a", 64), "ghost", 1<<22), // its main process is gone
	}}
	c, err := New(cfg, Deps{Events: h.events, Docker: docker, Guard: fakeGuard{"protected": "label riposte.protect=true"},
		OnFinish: func(f Finished) { h.mu.Lock(); h.finished = append(h.finished, f); h.mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	h.c = c
	return h
}

func startReq(ref string, params actions.Params) actions.Request {
	return actions.Request{Action: ActionStart, Container: ref, Params: params, Incident: "inc-1", Actor: "playbook:test", Key: "a/p/0"}
}

func TestRunRefusals(t *testing.T) {
	h := newHarness(t, Config{MaxDuration: time.Minute})
	// detector.enabled: false
	noEvents, err := New(Config{EvidenceDir: t.TempDir()}, Deps{Docker: &fakeDocker{byRef: map[string]container.InspectResponse{"web": running(testID, "web", os.Getpid())}}, Guard: fakeGuard{}})
	if err != nil {
		t.Fatal(err)
	}
	defer noEvents.Close()
	tests := []struct {
		name    string
		c       *Capture
		req     actions.Request
		errHas  string
		errIs   error
		retried bool
	}{
		{name: "protected", req: startReq("protected", nil), errHas: "start capture of protected: container is protected: label riposte.protect=true", errIs: actions.ErrProtected},
		{name: "not found", req: startReq("nope", nil), errHas: "start capture of nope: not found on this docker host", errIs: actions.ErrNotFound},
		{name: "not running", req: startReq("stopped", nil), errHas: "start capture of stopped: the container is not running"},
		{name: "nothing", req: startReq("web", actions.Params{"network": false, "syscalls": false}), errHas: "network and syscalls are both false: nothing to capture"},
		{name: "no detector", c: noEvents, req: startReq("web", actions.Params{"network": false}), errHas: "syscall capture needs the eBPF detector"},
		{name: "bad duration", req: startReq("web", actions.Params{"duration": "soon"}), errHas: `parameter duration: want a duration such as 30s or 5m, got "soon"`},
		{name: "zero duration", req: startReq("web", actions.Params{"duration": "0s"}), errHas: "parameter duration: must be more than 0"},
		{name: "tiny max_bytes", req: startReq("web", actions.Params{"max_bytes": "1KiB"}), errHas: "parameter max_bytes: must be at least 64KiB, got 1024"},
		{name: "no netns", req: startReq("ghost", nil), errHas: "start capture of ghost (aaaaaaaaaaaa): open the network namespace of pid 4194304"},
		{name: "bad ref", req: startReq("web; rm -rf /", nil), errHas: `invalid container reference "web; rm -rf /"`},
		{name: "host alert", req: actions.Request{Action: ActionStart, Alert: alert.Alert{OutputFields: map[string]any{"container.id": "host"}}}, errHas: "the alert is about the host"},
		{name: "unknown action", req: actions.Request{Action: "capture.stop", Container: "web"}, errHas: `unknown action "capture.stop"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			if c == nil {
				c = h.c
			}
			_, err := c.Run(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.errHas)
			}
			if tt.errIs != nil && !errors.Is(err, tt.errIs) {
				t.Errorf("err %v does not wrap %v", err, tt.errIs)
			}
		})
	}
	if ents, _ := os.ReadDir(h.dir); len(ents) != 0 {
		t.Errorf("refused captures left files: %v", ents)
	}
	if n := h.events.subscribers(); n != 0 {
		t.Errorf("%d subscriptions left", n)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		deps Deps
		err  string
	}{
		{"no evidence dir", Config{}, Deps{Docker: &fakeDocker{}, Guard: fakeGuard{}}, "evidence_dir: required"},
		{"bad config", Config{EvidenceDir: "x", MaxBytes: 10, Snaplen: 1}, Deps{Docker: &fakeDocker{}, Guard: fakeGuard{}}, "max_bytes: must be at least 64KiB, got 10 bytes\ncapture: snaplen"},
		{"no docker", Config{EvidenceDir: "x"}, Deps{Guard: fakeGuard{}}, "no Docker client"},
		{"no guard", Config{EvidenceDir: "x"}, Deps{Docker: &fakeDocker{}}, "no protected-container guard"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.deps)
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("err = %v, want %q", err, tt.err)
			}
		})
	}
}

func execEvent(pid, ppid uint32, tty uint32, args ...string) event.Event {
	return event.Event{Type: event.Exec, Syscall: "execve", Time: time.Now(), PID: pid, PPID: ppid, Comm: filepath.Base(args[0]),
		Exe: "/bin/" + args[0], Args: args, TTY: tty, User: "root", Container: event.Container{ID: testID, Name: "web"}}
}

// checkEvidence verifies that the result's hashes are those of the files
// on disk and that the manifest lists them.
func checkEvidence(t *testing.T, res actions.Result) Manifest {
	t.Helper()
	if res.SHA256 == "" || len(res.Evidence) == 0 {
		t.Fatalf("result without evidence: %+v", res)
	}
	for _, ev := range res.Evidence {
		data, err := os.ReadFile(ev.Path)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != ev.SHA256 || int64(len(data)) != ev.Size {
			t.Errorf("%s: sha256 %x size %d, result says %s %d", ev.Path, sum, len(data), ev.SHA256, ev.Size)
		}
	}
	last := res.Evidence[len(res.Evidence)-1]
	if filepath.Base(last.Path) != ManifestName || last.SHA256 != res.SHA256 {
		t.Errorf("last evidence %+v is not the manifest with the result's hash %s", last, res.SHA256)
	}
	var m Manifest
	data, _ := os.ReadFile(last.Path)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for i, f := range m.Files {
		if ev := res.Evidence[i]; filepath.Base(ev.Path) != f.Name || ev.SHA256 != f.SHA256 || ev.Size != f.Size {
			t.Errorf("manifest file %+v, evidence %+v", f, ev)
		}
	}
	return m
}

func readCapture(t *testing.T, path string) (capfile.Header, []capfile.Record, *capfile.Trailer) {
	t.Helper()
	r, f, err := capfile.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []capfile.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return r.Header(), recs, r.Trailer()
}

// TestSyscallCapture runs a syscall-only capture end to end against a fake
// detector: background start, one capture per container, Stop, hashes,
// state header from /proc, events in order, trailer, OnFinish.
func TestSyscallCapture(t *testing.T) {
	h := newHarness(t, Config{})
	ctx := context.Background()
	res, err := h.c.Run(ctx, startReq("web", actions.Params{"network": false, "duration": "1m"}))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.Detail["capture_id"].(string)
	dir, _ := res.Detail["dir"].(string)
	if !strings.HasPrefix(res.Note, "capture started: syscalls of web (0123456789ab) until ") || id == "" || res.SHA256 != "" {
		t.Fatalf("start result = %+v", res)
	}
	if want := filepath.Join(h.dir, "inc-1", "0123456789ab") + "/capture-"; !strings.HasPrefix(dir, want) {
		t.Errorf("dir %s, want under %s", dir, want)
	}
	// A second start on the same container (by another reference) starts nothing.
	again, err := h.c.Run(ctx, startReq(testID[:12], actions.Params{"network": false}))
	if err != nil || !strings.HasPrefix(again.Note, "capture already running, ends at ") || again.Detail["capture_id"] != id {
		t.Fatalf("second start: %+v, %v", again, err)
	}
	if st := h.c.Running(); len(st) != 1 || st[0].CaptureID != id || st[0].Name != "web" {
		t.Errorf("running = %+v", st)
	}
	// Another container may be captured meanwhile.
	other, err := h.c.Run(ctx, startReq("db", actions.Params{"network": false}))
	if err != nil {
		t.Fatal(err)
	}

	want := []event.Event{
		execEvent(5001, 4000, 34816, "sh", "-c", "cat /etc/hostname"),
		execEvent(5002, 5001, 34816, "cat", "/etc/hostname"),
		{Type: event.Connect, Time: time.Now(), PID: 5003, Comm: "nc", Family: "inet", SockType: "stream", RemoteAddr: "172.17.0.1", RemotePort: 4444, Ret: 0, Container: event.Container{ID: testID}},
	}
	for _, ev := range want {
		h.events.emit(ev)
	}
	h.events.emit(event.Event{Type: event.Exec, PID: 1, Container: event.Container{ID: strings.Repeat("d", 64)}}) // db's
	final, err := h.c.Stop(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	m := checkEvidence(t, final)
	if m.Reason != capfile.ReasonStopped || m.Truncated || len(m.Files) != 1 || m.Files[0].Events != 3 || m.Container.Name != "web" || m.Incident != "inc-1" {
		t.Errorf("manifest = %+v", m)
	}
	if !strings.Contains(final.Note, "capture of web (0123456789ab) ended (stopped): 3 events") {
		t.Errorf("final note = %q", final.Note)
	}
	hdr, recs, tr := readCapture(t, filepath.Join(dir, SyscallsFile))
	if hdr.CaptureID != id || hdr.Container.ID != testID || hdr.Container.Image != "riposte-test:1" || hdr.Container.PID != os.Getpid() ||
		len(hdr.Container.Networks) != 1 || hdr.Container.Networks[0].Gateway != "172.17.0.1" || hdr.Actor != "playbook:test" {
		t.Errorf("header = %+v", hdr)
	}
	var procs int
	var got []event.Event
	for _, rec := range recs {
		switch rec.Kind {
		case capfile.KindProcess:
			procs++
			if len(got) > 0 {
				t.Error("a process record after an event")
			}
		case capfile.KindEvent:
			got = append(got, *rec.Event)
		}
	}
	if procs == 0 {
		t.Error("no process in the state header")
	}
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Type != want[i].Type || got[i].PID != want[i].PID || strings.Join(got[i].Args, " ") != strings.Join(want[i].Args, " ") || got[i].RemotePort != want[i].RemotePort {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if tr == nil || tr.Reason != capfile.ReasonStopped || tr.Events != 3 || tr.Truncated {
		t.Errorf("trailer = %+v", tr)
	}
	// Wait on a finished capture answers at once, with the same result.
	w, err := h.c.Wait(ctx, id)
	if err != nil || w.SHA256 != final.SHA256 {
		t.Errorf("wait = %+v, %v", w, err)
	}
	if _, err := h.c.Stop(ctx, "web"); !errors.Is(err, actions.ErrNotFound) {
		t.Errorf("second stop: %v", err)
	}
	// Close ends the other capture with reason stopped.
	h.c.Close()
	o, err := h.c.Wait(ctx, other.Detail["capture_id"].(string))
	if err != nil || o.Detail["reason"] != capfile.ReasonStopped || o.Detail["events"] != uint64(1) {
		t.Errorf("other capture after Close: %+v, %v", o, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.finished) != 2 || h.finished[0].CaptureID != id || h.finished[0].Result.SHA256 != final.SHA256 || h.finished[0].Request.Key != "a/p/0" {
		t.Errorf("OnFinish calls = %+v", h.finished)
	}
	if h.events.subscribers() != 0 {
		t.Error("subscriptions left after the captures ended")
	}
	if _, err := h.c.Run(ctx, startReq("web", actions.Params{"network": false})); err == nil || !strings.Contains(err.Error(), "shut down") {
		t.Errorf("run after Close: %v", err)
	}
}

// TestCaptureEnds: each way a capture ends on its own.
func TestCaptureEnds(t *testing.T) {
	tests := []struct {
		name      string
		params    actions.Params
		cfg       Config
		during    func(h *harness)
		reason    string
		truncated bool
	}{
		{name: "duration", params: actions.Params{"duration": "300ms", "wait": true}, reason: capfile.ReasonDuration},
		{name: "duration capped", params: actions.Params{"duration": "1h", "wait": true}, cfg: Config{MaxDuration: 300 * time.Millisecond}, reason: capfile.ReasonDuration},
		{name: "detector stops", params: actions.Params{"wait": true}, during: func(h *harness) {
			for h.events.subscribers() == 0 {
				time.Sleep(time.Millisecond)
			}
			h.events.closeAll()
		}, reason: capfile.ReasonDetectorStopped},
		{name: "max_bytes", params: actions.Params{"max_bytes": "64KiB", "wait": true}, during: func(h *harness) {
			for h.events.subscribers() == 0 {
				time.Sleep(time.Millisecond)
			}
			for i := 0; i < 200000 && h.events.subscribers() > 0; i++ {
				ev := execEvent(uint32(10000+i), 1, 0, "sh", "-c", fmt.Sprintf("echo %d %s", i, strings.Repeat("z", i%97)))
				h.events.emit(ev)
				if i%1000 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}, reason: capfile.ReasonMaxBytes, truncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg)
			tt.params["network"] = false
			if tt.during != nil {
				go tt.during(h)
			}
			start := time.Now()
			res, err := h.c.Run(context.Background(), startReq("web", tt.params))
			if err != nil {
				t.Fatal(err)
			}
			m := checkEvidence(t, res)
			if m.Reason != tt.reason || m.Truncated != tt.truncated {
				t.Errorf("reason %q truncated %v, want %q %v (note %q)", m.Reason, m.Truncated, tt.reason, tt.truncated, res.Note)
			}
			if tt.cfg.MaxDuration != 0 && (!strings.Contains(strings.Join(m.Notes, ";"), "duration 1h0m0s lowered to capture.max_duration 300ms") || time.Since(start) > 5*time.Second) {
				t.Errorf("notes %v, took %s", m.Notes, time.Since(start))
			}
			if tt.truncated {
				if m.Bytes > 64<<10 {
					t.Errorf("files take %d bytes, cap 64KiB", m.Bytes)
				}
				_, recs, tr := readCapture(t, filepath.Join(res.Detail["dir"].(string), SyscallsFile))
				if tr == nil || !tr.Truncated || tr.Reason != capfile.ReasonMaxBytes || len(recs) < 100 {
					t.Errorf("trailer %+v after %d records", tr, len(recs))
				}
				t.Logf("64KiB cap: %d records, %d bytes", len(recs), m.Bytes)
			}
		})
	}
}

// TestWaitCancelled: with wait: true, the caller's ctx ending stops the
// capture cleanly and Run still returns the sealed result.
func TestWaitCancelled(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := h.c.Run(ctx, startReq("web", actions.Params{"network": false, "wait": true}))
	if err != nil {
		t.Fatal(err)
	}
	if m := checkEvidence(t, res); m.Reason != capfile.ReasonStopped {
		t.Errorf("reason %q", m.Reason)
	}
}

// TestConcurrentStarts: racing starts on one container make one capture.
func TestConcurrentStarts(t *testing.T) {
	h := newHarness(t, Config{})
	var wg sync.WaitGroup
	ids := make(chan string, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := h.c.Run(context.Background(), startReq("web", actions.Params{"network": false}))
			if err != nil {
				t.Error(err)
				return
			}
			ids <- res.Detail["capture_id"].(string)
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		seen[id] = true
	}
	if len(seen) != 1 || len(h.c.Running()) != 1 {
		t.Errorf("capture ids %v, running %v", seen, h.c.Running())
	}
}
