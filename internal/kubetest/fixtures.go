package kubetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// No controller-manager runs, so the fixtures below write the status a
// controller would (ready replicas) through the status subresource.

func tctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// Node creates a node object (no kubelet behind it) and deletes it when t
// ends.
func (s *Server) Node(t testing.TB, name string, unschedulable bool) {
	t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Unschedulable: unschedulable}}
	if _, err := s.client.CoreV1().Nodes().Create(tctx(t), n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// ScheduledPod creates a pod on nodeName ("" for none) owned, as
// controller, by owner (nil for a bare pod).
func (s *Server) ScheduledPod(t testing.TB, ns, name, nodeName string, owner *metav1.OwnerReference) *corev1.Pod {
	t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	out, err := s.client.CoreV1().Pods(ns).Create(tctx(t), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return out
}

// ControllerRef is a controller owner reference.
func ControllerRef(apiVersion, kind, name string, uid types.UID) *metav1.OwnerReference {
	yes := true
	return &metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: &yes}
}

func podTemplate(name string) (*metav1.LabelSelector, corev1.PodTemplateSpec) {
	sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
	return sel, corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel.MatchLabels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
}

// Deployment creates Deployment name and its ReplicaSet name-7d9f, both
// with ready ready replicas, and returns a controller reference to the
// ReplicaSet.
func (s *Server) Deployment(t testing.TB, ns, name string, ready int32) *metav1.OwnerReference {
	t.Helper()
	c := s.client.AppsV1()
	sel, tmpl := podTemplate(name)
	d, err := c.Deployments(ns).Create(tctx(t), &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &ready, Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	d.Status = appsv1.DeploymentStatus{Replicas: ready, ReadyReplicas: ready, AvailableReplicas: ready}
	if _, err := c.Deployments(ns).UpdateStatus(tctx(t), d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update deployment status: %v", err)
	}
	rs, err := c.ReplicaSets(ns).Create(tctx(t), &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-7d9f", OwnerReferences: []metav1.OwnerReference{*ControllerRef("apps/v1", "Deployment", name, d.UID)}},
		Spec:       appsv1.ReplicaSetSpec{Replicas: &ready, Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create replicaset: %v", err)
	}
	rs.Status = appsv1.ReplicaSetStatus{Replicas: ready, ReadyReplicas: ready, AvailableReplicas: ready}
	if _, err := c.ReplicaSets(ns).UpdateStatus(tctx(t), rs, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update replicaset status: %v", err)
	}
	return ControllerRef("apps/v1", "ReplicaSet", rs.Name, rs.UID)
}

// Workload creates a StatefulSet, DaemonSet, ReplicationController (with
// ready ready pods) or Job (owned by CronJob name, ready ignored) and
// returns a controller reference to it.
func (s *Server) Workload(t testing.TB, ns, kind, name string, ready int32) *metav1.OwnerReference {
	t.Helper()
	c := s.client.AppsV1()
	sel, tmpl := podTemplate(name)
	meta := metav1.ObjectMeta{Name: name}
	switch kind {
	case "StatefulSet":
		st, err := c.StatefulSets(ns).Create(tctx(t), &appsv1.StatefulSet{ObjectMeta: meta,
			Spec: appsv1.StatefulSetSpec{Replicas: &ready, Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create statefulset: %v", err)
		}
		st.Status = appsv1.StatefulSetStatus{Replicas: ready, ReadyReplicas: ready}
		if _, err := c.StatefulSets(ns).UpdateStatus(tctx(t), st, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update statefulset status: %v", err)
		}
		return ControllerRef("apps/v1", kind, name, st.UID)
	case "DaemonSet":
		d, err := c.DaemonSets(ns).Create(tctx(t), &appsv1.DaemonSet{ObjectMeta: meta,
			Spec: appsv1.DaemonSetSpec{Selector: sel, Template: tmpl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create daemonset: %v", err)
		}
		d.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: ready, CurrentNumberScheduled: ready, NumberReady: ready}
		if _, err := c.DaemonSets(ns).UpdateStatus(tctx(t), d, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update daemonset status: %v", err)
		}
		return ControllerRef("apps/v1", kind, name, d.UID)
	case "ReplicationController":
		rc, err := s.client.CoreV1().ReplicationControllers(ns).Create(tctx(t), &corev1.ReplicationController{ObjectMeta: meta,
			Spec: corev1.ReplicationControllerSpec{Replicas: &ready, Selector: sel.MatchLabels, Template: &tmpl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create replicationcontroller: %v", err)
		}
		return ControllerRef("v1", kind, name, rc.UID)
	case "Job":
		tmpl.Spec.RestartPolicy = corev1.RestartPolicyNever
		cj, err := s.client.BatchV1().CronJobs(ns).Create(tctx(t), &batchv1.CronJob{ObjectMeta: meta,
			Spec: batchv1.CronJobSpec{Schedule: "0 * * * *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create cronjob: %v", err)
		}
		j, err := s.client.BatchV1().Jobs(ns).Create(tctx(t), &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-29000000", OwnerReferences: []metav1.OwnerReference{*ControllerRef("batch/v1", "CronJob", name, cj.UID)}},
			Spec:       batchv1.JobSpec{Template: tmpl}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create job: %v", err)
		}
		return ControllerRef("batch/v1", "Job", j.Name, j.UID)
	}
	t.Fatalf("workload: unknown kind %q", kind)
	return nil
}

// SyncReadyReplicas writes, into ReplicaSet rs and the Deployment above it,
// the number of Ready pods rs owns, as the ReplicaSet and Deployment
// controllers would (no controller-manager runs), and returns it.
func (s *Server) SyncReadyReplicas(t testing.TB, ns, rs string) int32 {
	t.Helper()
	apps := s.client.AppsV1()
	r, err := apps.ReplicaSets(ns).Get(tctx(t), rs, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get replicaset %s: %v", rs, err)
	}
	pods, err := s.client.CoreV1().Pods(ns).List(tctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ready, all int32
	for _, p := range pods.Items {
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.UID != r.UID || p.DeletionTimestamp != nil {
			continue
		}
		all++
		if PodReady(&p) {
			ready++
		}
	}
	r.Status = appsv1.ReplicaSetStatus{Replicas: all, ReadyReplicas: ready, AvailableReplicas: ready, ObservedGeneration: r.Generation}
	if _, err := apps.ReplicaSets(ns).UpdateStatus(tctx(t), r, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update replicaset status: %v", err)
	}
	if up := metav1.GetControllerOf(r); up != nil && up.Kind == "Deployment" {
		d, err := apps.Deployments(ns).Get(tctx(t), up.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Status = appsv1.DeploymentStatus{Replicas: all, ReadyReplicas: ready, AvailableReplicas: ready, ObservedGeneration: d.Generation}
		if _, err := apps.Deployments(ns).UpdateStatus(tctx(t), d, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("update deployment status: %v", err)
		}
	}
	return ready
}

// WaitPods waits until cond holds for the pods of ns (listed fresh each
// time) or fails t after 30 s.
func (s *Server) WaitPods(t testing.TB, ns, what string, cond func([]corev1.Pod) bool) {
	t.Helper()
	err := s.waitFor(30*time.Second, func(ctx context.Context) (bool, error) {
		l, err := s.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		return err == nil && cond(l.Items), err
	})
	if err != nil {
		t.Fatalf("pods of %s: %s: %v", ns, what, err)
	}
}

// WatchQuarantine creates pod name (one busybox container) in ns and
// returns a channel that receives nil once watches have seen a
// NetworkPolicy created in ns and the pod carrying label, or an error when
// they have not within 30 s. Benchmarks start it before the action they
// time.
func WatchQuarantine(tb testing.TB, c kubernetes.Interface, ns, name, label string) <-chan error {
	tb.Helper()
	bg := context.Background()
	p, err := c.CoreV1().Pods(ns).Create(bg, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	pw, err := c.CoreV1().Pods(ns).Watch(bg, metav1.ListOptions{ResourceVersion: p.ResourceVersion,
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	if err != nil {
		tb.Fatalf("watch pod %s/%s: %v", ns, name, err)
	}
	nw, err := c.NetworkingV1().NetworkPolicies(ns).Watch(bg, metav1.ListOptions{ResourceVersion: p.ResourceVersion})
	if err != nil {
		pw.Stop()
		tb.Fatalf("watch networkpolicies of %s: %v", ns, err)
	}
	out := make(chan error, 1)
	go func() {
		defer pw.Stop()
		defer nw.Stop()
		timeout := time.After(30 * time.Second)
		labelled, created := false, false
		for !labelled || !created {
			select {
			case ev, ok := <-pw.ResultChan():
				if !ok {
					out <- fmt.Errorf("pod watch of %s/%s ended", ns, name)
					return
				}
				if p, isPod := ev.Object.(*corev1.Pod); isPod && ev.Type == watch.Modified && p.Labels[label] != "" {
					labelled = true
				}
			case ev, ok := <-nw.ResultChan():
				if !ok {
					out <- fmt.Errorf("networkpolicy watch of %s ended", ns)
					return
				}
				if _, isPol := ev.Object.(*netv1.NetworkPolicy); isPol && ev.Type == watch.Added {
					created = true
				}
			case <-timeout:
				out <- fmt.Errorf("watches of %s/%s: labelled %v, policy created %v after 30s", ns, name, labelled, created)
				return
			}
		}
		out <- nil
	}()
	return out
}
