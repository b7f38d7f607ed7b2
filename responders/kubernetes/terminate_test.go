package kubernetes

import (
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/riposte-sec/riposte/internal/actions"
)

func TestCordonAndUncordon(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "cordon", nil)
	nodeName := "node-" + ns
	s.Node(t, nodeName, false)
	s.ScheduledPod(t, ns, "api", nodeName, nil)
	nodes := s.Client().CoreV1().Nodes()

	res, err := run(t, r, "node.cordon", falco(ns, "api"), nil)
	if err != nil {
		t.Fatalf("cordon: %v", err)
	}
	n, err := nodes.Get(ctx(t), nodeName, get)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Spec.Unschedulable || n.Labels[LabelCordoned] != "true" || n.Labels[LabelIncident] != "inc-1" ||
		n.Annotations[AnnotationRule] != "Terminal shell in container" || res.Detail["node"] != nodeName {
		t.Fatalf("after cordon: unschedulable %v labels %v annotations %v detail %v", n.Spec.Unschedulable, n.Labels, n.Annotations, res.Detail)
	}

	if _, err := run(t, r, "node.uncordon", falco(ns, "api"), nil); err != nil {
		t.Fatalf("uncordon: %v", err)
	}
	n, err = nodes.Get(ctx(t), nodeName, get)
	if err != nil {
		t.Fatal(err)
	}
	if n.Spec.Unschedulable || n.Labels[LabelCordoned] != "" || n.Labels[LabelIncident] != "" || n.Annotations[AnnotationIncident] != "" {
		t.Fatalf("after uncordon: unschedulable %v labels %v annotations %v", n.Spec.Unschedulable, n.Labels, n.Annotations)
	}
}

func TestCordonLeavesAnAdministratorsCordon(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "admcordon", nil)
	nodeName := "node-" + ns
	s.Node(t, nodeName, true)
	s.ScheduledPod(t, ns, "api", nodeName, nil)

	res, err := run(t, r, "node.cordon", falco(ns, "api"), nil)
	if err != nil || res.Detail["node_cordoned_by_riposte"] != false {
		t.Fatalf("cordon of a cordoned node: detail %v err %v", res.Detail, err)
	}
	if _, err := run(t, r, "node.uncordon", falco(ns, "api"), nil); err != nil {
		t.Fatalf("uncordon: %v", err)
	}
	n, err := s.Client().CoreV1().Nodes().Get(ctx(t), nodeName, get)
	if err != nil || !n.Spec.Unschedulable || n.Labels[LabelCordoned] != "" {
		t.Fatalf("administrator's cordon lifted or claimed: unschedulable %v labels %v err %v", n.Spec.Unschedulable, n.Labels, err)
	}
}

func TestTerminateGuards(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	cases := []struct {
		name   string
		kind   string // owner: Deployment (via its ReplicaSet), StatefulSet, DaemonSet; "" for a bare pod
		ready  int32
		params actions.Params
		refuse string // "" means deleted
	}{
		{"replica guard refuses", "Deployment", 2, actions.Params{"min_healthy_replicas": 2}, "Deployment/web has 2 ready replicas; terminating one leaves 1, below min_healthy_replicas 2"},
		{"replica guard allows", "Deployment", 3, actions.Params{"min_healthy_replicas": 2}, ""},
		{"evict allowed", "Deployment", 3, actions.Params{"min_healthy_replicas": "2", "evict": true}, ""},
		{"statefulset refused when asked", "StatefulSet", 3, actions.Params{"refuse_statefulsets": true}, "StatefulSet/web and refuse_statefulsets is set"},
		{"statefulset replica guard", "StatefulSet", 1, actions.Params{"min_healthy_replicas": 1}, "StatefulSet/web has 1 ready replicas"},
		{"daemonset refused when asked", "DaemonSet", 3, actions.Params{"refuse_daemonsets": true, "refuse_statefulsets": true}, "DaemonSet/web and refuse_daemonsets is set"},
		{"daemonset allowed", "DaemonSet", 3, actions.Params{"refuse_statefulsets": true, "min_healthy_replicas": 1}, ""},
		{"bare pod refused when asked", "", 0, actions.Params{"refuse_bare_pods": true}, "bare pod"},
		{"bare pod refused by replica guard", "", 0, actions.Params{"min_healthy_replicas": 1}, "leaves 0 replicas"},
		{"bare pod deleted", "", 0, actions.Params{"grace_period": "0s"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := s.Namespace(t, "term", nil)
			var owner *metav1.OwnerReference
			switch tc.kind {
			case "Deployment":
				owner = s.Deployment(t, ns, "web", tc.ready)
			case "StatefulSet", "DaemonSet":
				owner = s.Workload(t, ns, tc.kind, "web", tc.ready)
			}
			before := s.ScheduledPod(t, ns, "web-7d9f-abcde", "", owner)
			res, err := run(t, r, "pod.terminate", falco(ns, before.Name), tc.params)
			after, getErr := s.Client().CoreV1().Pods(ns).Get(ctx(t), before.Name, get)
			if tc.refuse != "" {
				if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.refuse) {
					t.Fatalf("err %v, want ErrRefused naming %q", err, tc.refuse)
				}
				if getErr != nil || after.ResourceVersion != before.ResourceVersion || after.DeletionTimestamp != nil {
					t.Fatalf("refused pod touched: rv %s → %v, deletion %v, err %v", before.ResourceVersion, after.ResourceVersion, after.DeletionTimestamp, getErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("terminate: %v", err)
			}
			// No kubelet runs, so a graceful delete leaves the pod
			// terminating; a zero grace period removes it at once.
			if !apierrors.IsNotFound(getErr) && (getErr != nil || after.DeletionTimestamp == nil) {
				t.Fatalf("pod not deleted: %v, err %v", after, getErr)
			}
			if tc.kind == "Deployment" && strings.Join(res.Detail["owner_chain"].([]string), ",") != "ReplicaSet/web-7d9f,Deployment/web" {
				t.Fatalf("owner chain %v", res.Detail["owner_chain"])
			}
		})
	}
}

func TestTerminateProtectedRefusedAndUntouched(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "tprot", nil)
	p := s.Pod(t, ns, "db", map[string]string{"riposte.protect": "true"})
	_, err := run(t, r, "pod.terminate", falco(ns, "db"), nil)
	if !errors.Is(err, actions.ErrProtected) {
		t.Fatalf("err %v, want ErrProtected", err)
	}
	after, err := s.Client().CoreV1().Pods(ns).Get(ctx(t), "db", get)
	if err != nil || after.ResourceVersion != p.ResourceVersion || after.DeletionTimestamp != nil {
		t.Fatalf("protected pod touched: %v err %v", after, err)
	}
}

func TestTerminateBadParams(t *testing.T) {
	cases := []struct {
		params actions.Params
		want   string
	}{
		{actions.Params{"min_healthy_replicas": -1}, "min_healthy_replicas: must not be negative"},
		{actions.Params{"grace_period": "-5s"}, "grace_period"},
		{actions.Params{"evict": "maybe"}, "evict"},
	}
	for _, tc := range cases {
		if _, err := terminateFrom(tc.params); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("params %v: err %v, want %q", tc.params, err, tc.want)
		}
	}
}

func TestEvictHonoursPodDisruptionBudget(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "pdb", nil)
	c := s.Client()
	p := s.Pod(t, ns, "api-0", map[string]string{"app": "api"})
	// A Pending or unready pod is evicted whatever the budget says: make
	// it Running and Ready, as a kubelet would.
	p.Status.Phase = corev1.PodRunning
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	_, err := c.CoreV1().Pods(ns).UpdateStatus(ctx(t), p, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("set pod running: %v", err)
	}
	one := intstr.FromInt32(1)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "api"},
		Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}
	pdb, err = c.PolicyV1().PodDisruptionBudgets(ns).Create(ctx(t), pdb, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pdb: %v", err)
	}
	// No disruption controller runs: write the status it would, allowing none.
	pdb.Status = policyv1.PodDisruptionBudgetStatus{ObservedGeneration: pdb.Generation, CurrentHealthy: 1, DesiredHealthy: 1, ExpectedPods: 1, DisruptionsAllowed: 0}
	if _, err := c.PolicyV1().PodDisruptionBudgets(ns).UpdateStatus(ctx(t), pdb, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update pdb status: %v", err)
	}

	_, err = run(t, r, "pod.terminate", falco(ns, "api-0"), actions.Params{"evict": true})
	if err == nil || !strings.Contains(err.Error(), "PodDisruptionBudget does not allow it") || !actions.IsRetryable(err) {
		t.Fatalf("err %v, want a retryable PodDisruptionBudget refusal", err)
	}
	after, err := c.CoreV1().Pods(ns).Get(ctx(t), "api-0", get)
	if err != nil || after.DeletionTimestamp != nil {
		t.Fatalf("pod evicted despite its budget: %v err %v", after.DeletionTimestamp, err)
	}
}
