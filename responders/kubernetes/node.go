package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/riposte-sec/riposte/internal/actions"
)

// LabelCordoned marks a node riposte cordoned, so that node.uncordon undoes
// only riposte's own cordons and never one an administrator made.
const LabelCordoned = "riposte.io/cordoned"

// LabelIncident carries the incident id on a cordoned node when the id is a
// valid label value (it is always in the AnnotationIncident annotation).
const LabelIncident = "riposte.io/incident"

// runNode runs node.cordon or node.uncordon on the node the node parameter
// names, or else on the node of the alert's (or pod parameter's) pod. A
// protected pod, and a node carrying the protect label, are refused before
// anything is written.
func (r *Responder) runNode(ctx context.Context, req actions.Request, verb string,
	run func(*Responder, context.Context, actions.Request, *corev1.Node) (actions.Result, error)) (actions.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	name := strings.TrimSpace(req.Params.String("node", ""))
	detail := map[string]any{}
	what := "node " + name
	if name != "" {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			return actions.Result{}, fmt.Errorf("%s: parameter node: bad node name %q: %s", verb, name, strings.Join(msgs, "; "))
		}
	} else {
		ref, err := target(req)
		if err != nil {
			return actions.Result{}, fmt.Errorf("%s node of pod: %w", verb, err)
		}
		what = "node of pod " + ref.String()
		pod, err := r.api.CoreV1().Pods(ref.ns).Get(ctx, ref.name, metav1.GetOptions{})
		if err != nil {
			return actions.Result{}, fmt.Errorf("%s %s: %w", verb, what, apiError("get", "pods", ref.ns, err))
		}
		reason, err := r.protectedReason(ctx, pod)
		if err != nil {
			return actions.Result{}, fmt.Errorf("%s %s: %w", verb, what, err)
		}
		if reason != "" {
			r.log.Warn("refused: pod is protected", "action", req.Action, "pod", ref.String(), "reason", reason, "actor", req.Actor)
			return actions.Result{}, fmt.Errorf("%s %s: %w: %s", verb, what, errPodProtected, reason)
		}
		if pod.Spec.NodeName == "" {
			return actions.Result{}, fmt.Errorf("%s %s: pod is not scheduled on a node (spec.nodeName is empty)", verb, what)
		}
		name = pod.Spec.NodeName
		detail["namespace"], detail["pod"], detail["pod_uid"] = ref.ns, ref.name, string(pod.UID)
	}
	unlock := r.lock("node/" + name) // namespaces cannot contain "/"
	defer unlock()
	node, err := r.api.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s %s: %w", verb, what, apiError("get", "nodes", "", err))
	}
	if r.label.Matches(node.Labels) {
		reason := "node " + name + " has label " + r.cfg.Protect.Label
		r.log.Warn("refused: node is protected", "action", req.Action, "node", name, "reason", reason, "actor", req.Actor)
		return actions.Result{}, fmt.Errorf("%s %s: %w: %s", verb, what, errNodeProtected, reason)
	}
	res, err := run(r, ctx, req, node)
	if err != nil {
		r.log.Warn("action failed", "action", req.Action, "node", name, "actor", req.Actor, "err", err)
		return actions.Result{}, fmt.Errorf("%s %s: %w", verb, what, err)
	}
	if res.Detail == nil {
		res.Detail = map[string]any{}
	}
	for k, v := range detail {
		res.Detail[k] = v
	}
	r.log.Info("action done", "action", req.Action, "node", name, "actor", req.Actor, "note", res.Note)
	return res, nil
}

// patchNode merge-patches a node.
func (r *Responder) patchNode(ctx context.Context, name string, patch map[string]any) (*corev1.Node, error) {
	body, err := json.Marshal(patch)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	out, err := r.api.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "riposte"})
	if err != nil {
		return nil, apiError("patch", "nodes", "", err)
	}
	return out, nil
}

// cordon is node.cordon.
func (r *Responder) cordon(ctx context.Context, req actions.Request, node *corev1.Node) (actions.Result, error) {
	name := node.Name
	detail := map[string]any{"node": name}
	// A node someone else cordoned stays theirs: marking it riposte's would
	// let node.uncordon lift a cordon riposte did not make.
	if node.Spec.Unschedulable && node.Labels[LabelCordoned] != "true" {
		detail["node_cordoned_by_riposte"] = false
		return actions.Result{Note: "node already unschedulable (not by riposte); left as is", Detail: detail}, nil
	}
	labels := map[string]any{LabelCordoned: "true"}
	if len(validation.IsValidLabelValue(req.Incident)) == 0 && req.Incident != "" {
		labels[LabelIncident] = req.Incident
	}
	out, err := r.patchNode(ctx, name, map[string]any{
		"metadata": map[string]any{"labels": labels, "annotations": r.stamp(req)},
		"spec":     map[string]any{"unschedulable": true},
	})
	if err != nil {
		return actions.Result{}, err
	}
	note := "node cordoned"
	if node.Spec.Unschedulable {
		note = "node already cordoned by riposte"
	}
	detail["node_cordoned_by_riposte"], detail["node_resource_version"] = true, out.ResourceVersion
	return actions.Result{Note: note, Detail: detail}, nil
}

// uncordon is node.uncordon: it lifts only a cordon riposte made.
func (r *Responder) uncordon(ctx context.Context, _ actions.Request, node *corev1.Node) (actions.Result, error) {
	name := node.Name
	detail := map[string]any{"node": name}
	if node.Labels[LabelCordoned] != "true" {
		return actions.Result{Note: "node not cordoned by riposte; left as is", Detail: detail}, nil
	}
	annos := map[string]any{}
	for _, k := range []string{AnnotationIncident, AnnotationRule, AnnotationTime} {
		if _, ok := node.Annotations[k]; ok {
			annos[k] = nil
		}
	}
	meta := map[string]any{"labels": map[string]any{LabelCordoned: nil, LabelIncident: nil}}
	if len(annos) > 0 {
		meta["annotations"] = annos
	}
	out, err := r.patchNode(ctx, name, map[string]any{"metadata": meta, "spec": map[string]any{"unschedulable": nil}})
	if err != nil {
		return actions.Result{}, err
	}
	detail["node_resource_version"] = out.ResourceVersion
	return actions.Result{Note: "node uncordoned", Detail: detail}, nil
}
