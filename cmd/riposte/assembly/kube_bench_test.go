package assembly

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/riposte-sec/riposte/internal/benchtools/latency"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/engine"
	"github.com/riposte-sec/riposte/internal/kubetest"
	k8sresponder "github.com/riposte-sec/riposte/responders/kubernetes"
)

// Run with scripts/bench-kube.sh. One iteration takes every sample itself
// and reports percentiles.

const alertSamples = 50

// BenchmarkKubeAlertToIsolation measures the whole path on a real API
// server: a Falco alert with k8s.* fields posted to /v1/alerts, through the
// durable inbox, the playbook and pod.isolate, until a watch has seen the
// quarantine NetworkPolicy created and the pod labelled; beside, in the
// same run and interleaved, the same policy created and label patched by
// bare client-go calls. Every sample creates the policy: the previous
// pod was released (riposte) or the policy deleted (bare).
func BenchmarkKubeAlertToIsolation(b *testing.B) {
	k := kubetest.Start(b)
	nsRun, nsBare := k.Namespace(b, "bench-alert", nil), k.Namespace(b, "bench-bare", nil)
	dir := b.TempDir()
	pbPath := filepath.Join(dir, "playbooks.yaml")
	pb := "- playbook: isolate\n  match: {rules: [\"Terminal shell in container\"]}\n  actions: [{do: pod.isolate}]\n"
	if err := os.WriteFile(pbPath, []byte(pb), 0o600); err != nil {
		b.Fatal(err)
	}
	// The client's rate limiter out of the way (qps): this measures riposte.
	yml := fmt.Sprintf("playbooks: [%q]\nengine: {poll: 20ms}\nkubernetes:\n  kubeconfig: %q\n  qps: 1000\n  burst: 1000\n", pbPath, k.Kubeconfig(b, k.AdminConfig()))
	cfg, err := config.Parse(filepath.Join(dir, "riposte.yaml"), []byte(yml))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Data, cfg.Listen = filepath.Join(dir, "data"), "127.0.0.1:0"
	a, err := Build(cfg, NewLogger(cfg, io.Discard))
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- a.Serve(ctx, e2eToken, func(addr string) { addrc <- addr }) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-done:
		b.Fatalf("serve: %v", err)
	}
	defer func() { cancel(); <-done }()

	c := k.Client()
	bg := context.Background()
	pol := &netv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: k8sresponder.PolicyPrefix + "deny-all"},
		Spec: netv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{k8sresponder.DefaultQuarantineLabel: "deny-all"}},
			PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeIngress, netv1.PolicyTypeEgress}}}
	label := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"deny-all"}}}`, k8sresponder.DefaultQuarantineLabel))
	for b.Loop() {
		var bare, run []time.Duration
		for i := range alertSamples {
			name := fmt.Sprintf("web-%d", i)
			seen := kubetest.WatchQuarantine(b, c, nsBare, name, k8sresponder.DefaultQuarantineLabel)
			start := time.Now()
			if _, err := c.NetworkingV1().NetworkPolicies(nsBare).Create(bg, pol, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, err := c.CoreV1().Pods(nsBare).Patch(bg, name, types.MergePatchType, label, metav1.PatchOptions{}); err != nil {
				b.Fatal(err)
			}
			err := <-seen
			bare = append(bare, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.NetworkingV1().NetworkPolicies(nsBare).Delete(bg, pol.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}

			seen = kubetest.WatchQuarantine(b, c, nsRun, name, k8sresponder.DefaultQuarantineLabel)
			body := benchAlert(fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i), nsRun, name, i)
			start = time.Now()
			req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/alerts", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e2eToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				b.Fatalf("post alert: %v %v", resp, err)
			}
			resp.Body.Close()
			err = <-seen
			run = append(run, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.Engine.Act(bg, engine.Manual{Action: "pod.release", Params: map[string]any{"pod": nsRun + "/" + name}, Actor: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(latency.Millis(latency.Quantile(bare, 0.50)), "bare-p50-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(bare, 0.99)), "bare-p99-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(run, 0.50)), "alert-p50-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(run, 0.99)), "alert-p99-ms")
		fmt.Fprintf(os.Stdout, "\nNetworkPolicy created and pod labelled, as seen by a watch, %d samples each, interleaved:\n"+
			"  bare client-go (create + patch)                   p50 %6.2f ms  p99 %6.2f ms\n"+
			"  Falco alert on /v1/alerts -> playbook -> isolate  p50 %6.2f ms  p99 %6.2f ms\n",
			alertSamples, latency.Millis(latency.Quantile(bare, 0.50)), latency.Millis(latency.Quantile(bare, 0.99)), latency.Millis(latency.Quantile(run, 0.50)), latency.Millis(latency.Quantile(run, 0.99)))
	}
}

func benchAlert(id, ns, pod string, i int) string {
	body, _ := json.Marshal(map[string]any{
		"uuid": id, "time": time.Now().UTC().Format(time.RFC3339Nano), "rule": "Terminal shell in container",
		"priority": "Warning", "source": "syscall", "output": "A shell was spawned in a container",
		"output_fields": map[string]any{"container.id": fmt.Sprintf("%012x", i+1), "k8s.ns.name": ns, "k8s.pod.name": pod},
	})
	return string(body)
}
