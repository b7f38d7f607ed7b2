package kubernetes

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/kubetest"
)

func allReady(n int) func([]corev1.Pod) bool {
	return func(pods []corev1.Pod) bool {
		ready := 0
		for i := range pods {
			if kubetest.PodReady(&pods[i]) && pods[i].DeletionTimestamp == nil {
				ready++
			}
		}
		return ready == n && len(pods) == n
	}
}

// TestKwokReplicaGuardAndCordon: a Deployment's ReplicaSet pods on a kwok
// node, made Running and Ready by kwok; the replica guard counts them,
// refuses while the count would fall below min_healthy_replicas and
// terminates when it would not (kwok then removes the pod); node.cordon
// takes the pod's node, node.uncordon the node by name, and a node with
// the protect label is refused and untouched.
func TestKwokReplicaGuardAndCordon(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "kwok", nil)
	node := "kwok-" + ns
	s.KwokNode(t, node, nil)
	rs := s.Deployment(t, ns, "web", 0)
	for _, p := range []string{"web-7d9f-a", "web-7d9f-b", "web-7d9f-c"} {
		s.ScheduledPod(t, ns, p, node, rs)
	}
	s.WaitPods(t, ns, "3 Ready under kwok", allReady(3))
	if got := s.SyncReadyReplicas(t, ns, rs.Name); got != 3 {
		t.Fatalf("ready replicas %d, want 3", got)
	}

	_, err := run(t, r, "pod.terminate", falco(ns, "web-7d9f-a"), actions.Params{"min_healthy_replicas": 3})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "Deployment/web has 3 ready replicas; terminating one leaves 2, below min_healthy_replicas 3") {
		t.Fatalf("terminate at 3 ready with a minimum of 3: %v, want refused", err)
	}
	if _, err := run(t, r, "pod.terminate", falco(ns, "web-7d9f-a"), actions.Params{"min_healthy_replicas": 2}); err != nil {
		t.Fatalf("terminate at 3 ready with a minimum of 2: %v", err)
	}
	// Graceful delete; kwok, as the kubelet, removes the pod.
	s.WaitPods(t, ns, "web-7d9f-a gone, 2 Ready", allReady(2))
	if got := s.SyncReadyReplicas(t, ns, rs.Name); got != 2 {
		t.Fatalf("ready replicas %d, want 2", got)
	}
	_, err = run(t, r, "pod.terminate", falco(ns, "web-7d9f-b"), actions.Params{"min_healthy_replicas": 2, "evict": true})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("terminate at 2 ready with a minimum of 2: %v, want refused", err)
	}

	res, err := run(t, r, "node.cordon", falco(ns, "web-7d9f-b"), nil)
	if err != nil || res.Detail["node"] != node || res.Detail["pod"] != "web-7d9f-b" {
		t.Fatalf("cordon the pod's node: %+v %v", res, err)
	}
	n, err := s.Client().CoreV1().Nodes().Get(ctx(t), node, get)
	if err != nil || !n.Spec.Unschedulable || n.Labels[LabelCordoned] != "true" {
		t.Fatalf("node after cordon: %+v %v", n.Spec, err)
	}
	// Uncordon by node name: the pod it was cordoned for may be long gone.
	if _, err := r.Run(ctx(t), actions.Request{Action: "node.uncordon", Params: actions.Params{"node": node}, Actor: "cli:test"}); err != nil {
		t.Fatalf("uncordon by name: %v", err)
	}
	if n, err := s.Client().CoreV1().Nodes().Get(ctx(t), node, get); err != nil || n.Spec.Unschedulable || n.Labels[LabelCordoned] != "" {
		t.Fatalf("node after uncordon: unschedulable %v labels %v err %v", n.Spec.Unschedulable, n.Labels, err)
	}

	// A protected node is refused by name and through its pod, untouched.
	patch := []byte(`{"metadata":{"labels":{"riposte.protect":"true"}}}`)
	if _, err := s.Client().CoreV1().Nodes().Patch(ctx(t), node, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, req := range []actions.Request{
		{Action: "node.cordon", Params: actions.Params{"node": node}},
		{Action: "node.cordon", Alert: falco(ns, "web-7d9f-c")},
	} {
		_, err := r.Run(ctx(t), req)
		if !errors.Is(err, actions.ErrProtected) || !strings.Contains(err.Error(), "node is protected: node "+node+" has label riposte.protect=true") {
			t.Fatalf("cordon of a protected node: %v, want ErrProtected naming the label", err)
		}
	}
	if n, err := s.Client().CoreV1().Nodes().Get(ctx(t), node, get); err != nil || n.Spec.Unschedulable || n.Labels[LabelCordoned] != "" {
		t.Fatalf("protected node touched: unschedulable %v labels %v err %v", n.Spec.Unschedulable, n.Labels, err)
	}
}

func TestNodeParamErrors(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	cases := []struct {
		params actions.Params
		want   string
	}{
		{actions.Params{"node": "Bad_Node"}, `parameter node: bad node name "Bad_Node"`},
		{actions.Params{"node": "no-such-node"}, "not found"},
		{nil, "no pod: the alert has no k8s.ns.name"},
	}
	for _, tc := range cases {
		_, err := r.Run(ctx(t), actions.Request{Action: "node.uncordon", Params: tc.params})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("params %v: %v, want %q", tc.params, err, tc.want)
		}
	}
}
