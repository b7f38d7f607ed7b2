package assembly

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/evidence"
	"github.com/riposte-sec/riposte/internal/kubetest"
	"github.com/riposte-sec/riposte/responders/kubernetes"
)

// postAlertsEnv holds the alerts (one JSON document a line) the test
// binary, run as a CI job, posts to the intake named by CIIntakeEnv with
// the token in RIPOSTE_E2E_TOKEN.
const postAlertsEnv = "RIPOSTE_TEST_POST_ALERTS"

func postAlertsChild() int {
	url, token := os.Getenv(CIIntakeEnv), os.Getenv("RIPOSTE_E2E_TOKEN")
	if url == "" {
		fmt.Fprintln(os.Stderr, CIIntakeEnv+" is not set")
		return 3
	}
	for line := range strings.SplitSeq(os.Getenv(postAlertsEnv), "\n") {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(line))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 4
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			fmt.Fprintln(os.Stderr, "post alert:", resp.Status)
			return 5
		}
	}
	fmt.Println("staging tests passed")
	return 0
}

// TestCINamespaceContainsPods: `riposte ci --namespace NS -- CMD` takes
// Falco alerts on its intake while CMD runs; the pod of NS that an alert
// names gets its evidence collected, is isolated and labelled, and the
// report names it and exits 86; an alert about another namespace's pod
// changes nothing. A clean job exits with the command's status.
func TestCINamespaceContainsPods(t *testing.T) {
	k := kubetest.Start(t)
	ns := k.Namespace(t, "ci", nil)
	other := k.Namespace(t, "other", nil)
	k.Pod(t, ns, "api-7d9f", nil)
	k.Pod(t, other, "web", nil)
	t.Setenv("RIPOSTE_E2E_TOKEN", e2eToken)
	dir := t.TempDir()
	yml := fmt.Sprintf("listen: 127.0.0.1:0\nauth: {token_env: RIPOSTE_E2E_TOKEN}\nengine: {poll: 20ms}\nkubernetes:\n  kubeconfig: %q\n", k.Kubeconfig(t, k.AdminConfig()))
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Data = filepath.Join(dir, "data")
	t.Setenv(postAlertsEnv, falcoPodAlertJSON("ci-1", ns, "api-7d9f")+"\n"+falcoPodAlertJSON("ci-2", other, "web"))

	var out bytes.Buffer
	rep, code, err := RunCI(context.Background(), cfg, CIOptions{Namespace: ns, Command: []string{os.Args[0]}, Grace: 300 * time.Millisecond, Stdout: &out, Stderr: &out})
	if err != nil {
		t.Fatalf("RunCI: %v\n%s", err, out.String())
	}
	if code != ExitIncidents || rep.ExitCode != 0 || !strings.Contains(out.String(), "staging tests passed") {
		t.Fatalf("exit %d (command %d), want %d\n%s", code, rep.ExitCode, ExitIncidents, out.String())
	}
	if len(rep.Incidents) != 1 || rep.Incidents[0].Namespace != ns || rep.Incidents[0].Pod != "api-7d9f" {
		t.Fatalf("incidents %+v, want one naming %s/api-7d9f", rep.Incidents, ns)
	}
	in := rep.Incidents[0]
	var got []string
	for _, a := range in.Actions {
		got = append(got, a.Action+" "+a.Status)
		if a.Action == "pod.evidence" {
			bundles, _ := filepath.Glob(filepath.Join(cfg.Data, "evidence", "*", ns+"_api-7d9f", "*"))
			if len(bundles) != 1 {
				t.Fatalf("evidence bundles %v", bundles)
			}
			if sum, err := evidence.Verify(bundles[0]); err != nil || sum != a.SHA256 {
				t.Fatalf("bundle verify %s %v, report says %s", sum, err, a.SHA256)
			}
		}
	}
	if strings.Join(got, ", ") != "pod.evidence succeeded, pod.isolate succeeded, pod.label succeeded" {
		t.Fatalf("actions: %s", strings.Join(got, ", "))
	}
	c := k.Client()
	pod, err := c.CoreV1().Pods(ns).Get(context.Background(), "api-7d9f", metav1.GetOptions{})
	if err != nil || pod.Labels[kubernetes.DefaultQuarantineLabel] == "" || pod.Labels["riposte-ci"] != "contained" {
		t.Fatalf("pod not isolated and labelled: %v %v", pod.Labels, err)
	}
	if web, err := c.CoreV1().Pods(other).Get(context.Background(), "web", metav1.GetOptions{}); err != nil || len(web.Labels) != 0 {
		t.Fatalf("the other namespace's pod was touched: %v %v", web.Labels, err)
	}
	files, err := rep.WriteFiles(filepath.Join(dir, "report"))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(files[1])
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(string(x), "in pod "+ns+"/api-7d9f") || !strings.Contains(text.String(), "in pod "+ns+"/api-7d9f") {
		t.Fatalf("reports do not name the pod:\n%s\n%s", x, text.String())
	}

	// A clean job: nothing posted, the command's status.
	cfg.Data = filepath.Join(dir, "data2")
	rep, code, err = RunCI(context.Background(), cfg, CIOptions{Namespace: ns, Command: []string{"sh", "-c", "exit 3"}, Grace: 300 * time.Millisecond, Stdout: &out, Stderr: &out})
	if err != nil || code != 3 || len(rep.Incidents) != 0 {
		t.Fatalf("clean job: code %d incidents %v err %v", code, rep.Incidents, err)
	}

	if _, _, err := RunCI(context.Background(), cfg, CIOptions{Namespace: "Bad_NS", Command: []string{"true"}}); err == nil || !strings.Contains(err.Error(), `--namespace "Bad_NS"`) {
		t.Fatalf("bad namespace: %v", err)
	}
}
