package kubernetes

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/riposte-sec/riposte/internal/actions"
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
			seen := watchBoth(b, nsBare, name)
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

			seen = watchBoth(b, nsRun, name)
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
		b.ReportMetric(ms(pct(bare, 50)), "bare-p50-ms")
		b.ReportMetric(ms(pct(bare, 99)), "bare-p99-ms")
		b.ReportMetric(ms(pct(run, 50)), "isolate-p50-ms")
		b.ReportMetric(ms(pct(run, 99)), "isolate-p99-ms")
		fmt.Fprintf(os.Stdout, "\nNetworkPolicy created and pod labelled, as seen by a watch, %d samples each, interleaved:\n"+
			"  bare client-go (create + patch)  p50 %6.2f ms  p99 %6.2f ms\n"+
			"  pod.isolate through Run          p50 %6.2f ms  p99 %6.2f ms\n",
			isolateSamples, ms(pct(bare, 50)), ms(pct(bare, 99)), ms(pct(run, 50)), ms(pct(run, 99)))
	}
}

// watchBoth creates pod name in ns and returns a channel that receives nil
// once watches have seen the quarantine policy created in ns and the pod
// carrying the quarantine label (or an error when they do not within 30 s).
func watchBoth(b *testing.B, ns, name string) <-chan error {
	b.Helper()
	s := cluster(b)
	c := s.Client()
	ctx := context.Background()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
	p, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pw, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: p.ResourceVersion,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		b.Fatal(err)
	}
	nw, err := c.NetworkingV1().NetworkPolicies(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: p.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer pw.Stop()
		defer nw.Stop()
		timeout := time.After(30 * time.Second)
		labelled, created := false, false
		for !labelled || !created {
			select {
			case ev, ok := <-pw.ResultChan():
				if !ok {
					done <- fmt.Errorf("pod watch of %s/%s ended", ns, name)
					return
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type == watch.Modified && p.Labels[DefaultQuarantineLabel] != "" {
					labelled = true
				}
			case ev, ok := <-nw.ResultChan():
				if !ok {
					done <- fmt.Errorf("networkpolicy watch of %s ended", ns)
					return
				}
				if _, isPol := ev.Object.(*netv1.NetworkPolicy); isPol && ev.Type == watch.Added {
					created = true
				}
			case <-timeout:
				done <- fmt.Errorf("watches of %s/%s: labelled %v, policy created %v after 30s", ns, name, labelled, created)
				return
			}
		}
		done <- nil
	}()
	return done
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
