package kubernetes

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/actions"
)

// ErrRefused is wrapped by actions a guard refused (replica guard, bare,
// DaemonSet or StatefulSet pods): nothing was written.
var ErrRefused = errors.New("refused by guard")

// terminateOpts is what pod.terminate was asked for.
type terminateOpts struct {
	evict                                    bool
	grace                                    *int64
	minHealthy                               int64
	refuseBare, refuseDaemon, refuseStateful bool
}

func terminateFrom(p actions.Params) (terminateOpts, error) {
	var o terminateOpts
	var err error
	if o.evict, err = p.Bool("evict", false); err != nil {
		return o, err
	}
	if _, ok := p["grace_period"]; ok {
		d, err := p.Duration("grace_period", 0)
		if err != nil {
			return o, err
		}
		if d < 0 {
			return o, fmt.Errorf("parameter grace_period: must not be negative, got %s", d)
		}
		s := int64(d.Seconds())
		o.grace = &s
	}
	if o.minHealthy, err = p.Int("min_healthy_replicas", 0); err != nil {
		return o, err
	}
	if o.minHealthy < 0 {
		return o, fmt.Errorf("parameter min_healthy_replicas: must not be negative, got %d", o.minHealthy)
	}
	for _, b := range []struct {
		name string
		dst  *bool
	}{{"refuse_bare_pods", &o.refuseBare}, {"refuse_daemonsets", &o.refuseDaemon}, {"refuse_statefulsets", &o.refuseStateful}} {
		if *b.dst, err = p.Bool(b.name, false); err != nil {
			return o, err
		}
	}
	return o, nil
}

// owner is the top of a pod's controller chain and how many of its
// replicas are ready.
type owner struct {
	chain []string // Kind/name from the pod up
	kind  string   // "" for a bare pod
	ready int64
	known bool // whether ready is meaningful
}

// ownerOf walks the pod's controller chain: ReplicaSet → Deployment,
// StatefulSet, DaemonSet. Other controllers (Job, custom resources) are
// named but their ready count is unknown.
func (r *Responder) ownerOf(ctx context.Context, pod *corev1.Pod) (owner, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return owner{}, nil
	}
	ns := pod.Namespace
	apps := r.api.AppsV1()
	o := owner{kind: ref.Kind, chain: []string{ref.Kind + "/" + ref.Name}}
	switch ref.Kind {
	case "ReplicaSet":
		rs, err := apps.ReplicaSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return o, apiError("get", "replicasets", ns, err)
		}
		o.ready, o.known = int64(rs.Status.ReadyReplicas), true
		if up := metav1.GetControllerOf(rs); up != nil && up.Kind == "Deployment" {
			d, err := apps.Deployments(ns).Get(ctx, up.Name, metav1.GetOptions{})
			if err != nil {
				return o, apiError("get", "deployments", ns, err)
			}
			// The Deployment counts every ReplicaSet's ready pods, which is
			// what stays serving during a rollout.
			o.kind, o.ready = "Deployment", int64(d.Status.ReadyReplicas)
			o.chain = append(o.chain, "Deployment/"+d.Name)
		}
	case "StatefulSet":
		s, err := apps.StatefulSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return o, apiError("get", "statefulsets", ns, err)
		}
		o.ready, o.known = int64(s.Status.ReadyReplicas), true
	case "DaemonSet":
		d, err := apps.DaemonSets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return o, apiError("get", "daemonsets", ns, err)
		}
		o.ready, o.known = int64(d.Status.NumberReady), true
	}
	return o, nil
}

// terminate is pod.terminate. The guards run before anything is written;
// the delete or eviction carries the pod's uid as a precondition so that a
// pod recreated under the same name in between is not the one removed.
func (r *Responder) terminate(ctx context.Context, req actions.Request, pod *corev1.Pod) (actions.Result, error) {
	o, err := terminateFrom(req.Params)
	if err != nil {
		return actions.Result{}, err
	}
	own, err := r.ownerOf(ctx, pod)
	if err != nil {
		return actions.Result{}, err
	}
	refuse := func(format string, a ...any) (actions.Result, error) {
		r.log.Warn("refused by guard", "action", req.Action, "pod", pod.Namespace+"/"+pod.Name, "reason", fmt.Sprintf(format, a...), "actor", req.Actor)
		return actions.Result{}, fmt.Errorf("%w: "+format, append([]any{ErrRefused}, a...)...)
	}
	switch {
	case own.kind == "" && o.refuseBare:
		return refuse("pod has no controller (bare pod) and refuse_bare_pods is set")
	case own.kind == "DaemonSet" && o.refuseDaemon:
		return refuse("pod belongs to %s and refuse_daemonsets is set", own.chain[0])
	case own.kind == "StatefulSet" && o.refuseStateful:
		return refuse("pod belongs to %s and refuse_statefulsets is set", own.chain[0])
	}
	if o.minHealthy > 0 {
		switch {
		case own.kind == "":
			// A bare pod is a group of one: nothing is left after it.
			return refuse("bare pod: terminating it leaves 0 replicas, below min_healthy_replicas %d", o.minHealthy)
		case !own.known:
			return refuse("cannot count ready replicas of %s for min_healthy_replicas %d", own.chain[len(own.chain)-1], o.minHealthy)
		case own.ready-1 < o.minHealthy:
			// Counted as if the pod were ready: the conservative reading,
			// since a compromised pod may well be passing its probes.
			return refuse("%s has %d ready replicas; terminating one leaves %d, below min_healthy_replicas %d",
				own.chain[len(own.chain)-1], own.ready, own.ready-1, o.minHealthy)
		}
	}
	del := &metav1.DeleteOptions{GracePeriodSeconds: o.grace, Preconditions: &metav1.Preconditions{UID: &pod.UID}}
	detail := map[string]any{"owner_chain": own.chain, "evicted": o.evict}
	if own.known {
		detail["ready_replicas_before"] = own.ready
	}
	if o.evict {
		ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace}, DeleteOptions: del}
		err := r.api.PolicyV1().Evictions(pod.Namespace).Evict(ctx, ev)
		if apierrors.IsTooManyRequests(err) {
			// The API server answers 429 when a PodDisruptionBudget forbids it.
			return actions.Result{}, actions.Retryable(fmt.Errorf("evict: a PodDisruptionBudget does not allow it now: %w", err))
		}
		if err != nil {
			return actions.Result{}, apiError("create", "pods/eviction", pod.Namespace, err)
		}
		return actions.Result{Note: "pod evicted", Detail: detail}, nil
	}
	if err := r.api.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, *del); err != nil {
		return actions.Result{}, apiError("delete", "pods", pod.Namespace, err)
	}
	return actions.Result{Note: "pod deleted", Detail: detail}, nil
}
