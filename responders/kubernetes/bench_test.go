package kubernetes

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/benchtools/latency"
	"github.com/riposte-sec/riposte/internal/kubetest"
)

// Run with scripts/bench-kube.sh (go test -run '^$' -bench
// BenchmarkKubeIsolate -benchtime 1x). One iteration takes every sample
// itself and reports percentiles, so one iteration is the measurement.

const isolateSamples = 60

// BenchmarkKubeIsolate measures pod.isolate on a real API server from the
// call until a watch has seen both the quarantine NetworkPolicy created and
// the pod labelled, beside the same two writes made with bare client-go
// calls (create the policy, merge-patch the label), interleaved so both see
// the same server. Every sample creates the policy: the one before was
// released (riposte) or deleted (bare).
func BenchmarkKubeIsolate(b *testing.B) {
	s := cluster(b)
	// The client's rate limiter out of the way: this measures riposte.
	r, err := New(Config{QPS: 1000, Burst: 1000}, Deps{REST: s.AdminConfig()})
	if err != nil {
		b.Fatal(err)
	}
	c := s.Client()
	nsRun, nsBare := s.Namespace(b, "bench-run", nil), s.Namespace(b, "bench-bare", nil)
	ctx := context.Background()
	pol := r.policy(nsBare, isolation{}, "deny-all")
	label := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"deny-all"}}}`, DefaultQuarantineLabel))
	for b.Loop() {
		var bare, run []time.Duration
		for i := range isolateSamples {
			name := fmt.Sprintf("web-%d", i)
			seen := kubetest.WatchQuarantine(b, cluster(b).Client(), nsBare, name, DefaultQuarantineLabel)
			start := time.Now()
			if _, err := c.NetworkingV1().NetworkPolicies(nsBare).Create(ctx, pol, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			if _, err := c.CoreV1().Pods(nsBare).Patch(ctx, name, types.MergePatchType, label, metav1.PatchOptions{}); err != nil {
				b.Fatal(err)
			}
			err := <-seen
			bare = append(bare, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if err := c.NetworkingV1().NetworkPolicies(nsBare).Delete(ctx, pol.Name, metav1.DeleteOptions{}); err != nil {
				b.Fatal(err)
			}

			seen = kubetest.WatchQuarantine(b, cluster(b).Client(), nsRun, name, DefaultQuarantineLabel)
			start = time.Now()
			res, err := r.Run(ctx, actions.Request{Action: "pod.isolate", Alert: falco(nsRun, name), Incident: "bench", Actor: "bench"})
			if err != nil || res.Detail["policy_created"] != true {
				b.Fatalf("isolate: %v %v", err, res.Detail)
			}
			err = <-seen
			run = append(run, time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Run(ctx, actions.Request{Action: "pod.release", Alert: falco(nsRun, name), Actor: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(latency.Millis(latency.Quantile(bare, 0.50)), "bare-p50-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(bare, 0.99)), "bare-p99-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(run, 0.50)), "isolate-p50-ms")
		b.ReportMetric(latency.Millis(latency.Quantile(run, 0.99)), "isolate-p99-ms")
		fmt.Fprintf(os.Stdout, "\nNetworkPolicy created and pod labelled, as seen by a watch, %d samples each, interleaved:\n"+
			"  bare client-go (create + patch)  p50 %6.2f ms  p99 %6.2f ms\n"+
			"  pod.isolate through Run          p50 %6.2f ms  p99 %6.2f ms\n",
			isolateSamples, latency.Millis(latency.Quantile(bare, 0.50)), latency.Millis(latency.Quantile(bare, 0.99)), latency.Millis(latency.Quantile(run, 0.50)), latency.Millis(latency.Quantile(run, 0.99)))
	}
}
