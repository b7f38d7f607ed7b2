package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/guard"
)

// Annotations riposte writes on the pods it acts on.
const (
	AnnotationIncident = "riposte.io/incident"
	AnnotationRule     = "riposte.io/rule"
	AnnotationTime     = "riposte.io/time"
	// AnnotationLabels lists the label keys pod.label set, comma-separated,
	// so that pod.release can remove them.
	AnnotationLabels = "riposte.io/labels"
	// AnnotationAnnotations lists the annotation keys pod.label set.
	AnnotationAnnotations = "riposte.io/annotations"
	// PolicyPrefix starts the name of every quarantine NetworkPolicy.
	PolicyPrefix = "riposte-quarantine-"
)

// Deps are the responder's dependencies.
type Deps struct {
	// REST is the client configuration; nil means RESTConfig(cfg).
	REST *rest.Config
	// Logger receives one line per action; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// EvidenceDir is used when the config names none.
	EvidenceDir string
}

// Responder runs the pod.* and node.* actions against one cluster.
type Responder struct {
	cfg   Config
	api   kubernetes.Interface
	log   *slog.Logger
	now   func() time.Time
	label guard.Label

	mu    sync.Mutex
	locks map[string]*sync.Mutex // by namespace
}

// New checks cfg, loads the client configuration and returns a Responder.
func New(cfg Config, deps Deps) (*Responder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("kubernetes responder config: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.EvidenceDir == "" {
		cfg.EvidenceDir = deps.EvidenceDir
	}
	rc := deps.REST
	if rc == nil {
		var err error
		if rc, err = RESTConfig(cfg); err != nil {
			return nil, fmt.Errorf("kubernetes responder: %w", err)
		}
	}
	rc = rest.CopyConfig(rc)
	rc.Timeout = cfg.Timeout
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.UserAgent == "" {
		rc.UserAgent = "riposte"
	}
	api, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes responder: client for %s: %w", rc.Host, err)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	return &Responder{cfg: cfg, api: api, log: log.With("responder", "kubernetes"), now: now,
		label: guard.ParseLabel(cfg.Protect.Label), locks: map[string]*sync.Mutex{}}, nil
}

// Config returns the configuration in effect, defaults applied.
func (r *Responder) Config() Config { return r.cfg }

type podRef struct{ ns, name string }

func (p podRef) String() string { return p.ns + "/" + p.name }

// ParsePod reads NAMESPACE/NAME (the pod parameter, `riposte act --pod`)
// and checks both are valid Kubernetes names.
func ParsePod(s string) (namespace, name string, err error) {
	ns, name, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return "", "", fmt.Errorf("want NAMESPACE/NAME, got %q", s)
	}
	ref, err := checkRef(podRef{ns, name})
	return ref.ns, ref.name, err
}

func checkRef(ref podRef) (podRef, error) {
	if msgs := validation.IsDNS1123Label(ref.ns); len(msgs) > 0 {
		return ref, fmt.Errorf("bad namespace %q: %s", ref.ns, strings.Join(msgs, "; "))
	}
	if msgs := validation.IsDNS1123Subdomain(ref.name); len(msgs) > 0 {
		return ref, fmt.Errorf("bad pod name %q: %s", ref.name, strings.Join(msgs, "; "))
	}
	return ref, nil
}

// target returns the pod an action is about.
func target(req actions.Request) (podRef, error) {
	if s := strings.TrimSpace(req.Params.String("pod", "")); s != "" {
		ns, name, err := ParsePod(s)
		if err != nil {
			return podRef{ns, name}, fmt.Errorf("parameter pod: %w", err)
		}
		return podRef{ns, name}, nil
	}
	ref := podRef{req.Alert.Field("k8s.ns.name"), req.Alert.Field("k8s.pod.name")}
	if ref.ns == "" || ref.name == "" {
		return ref, errors.New("no pod: the alert has no k8s.ns.name and k8s.pod.name, and no pod parameter was given")
	}
	return checkRef(ref)
}

// Run runs one pod.* or node.* action. A protected pod (or node) is refused with an error
// wrapping actions.ErrProtected before anything is written; a missing pod
// gives actions.ErrNotFound; an unreachable or overloaded API server gives
// an error marked actions.Retryable.
func (r *Responder) Run(ctx context.Context, req actions.Request) (actions.Result, error) {
	var run func(*Responder, context.Context, actions.Request, *corev1.Pod) (actions.Result, error)
	var verb string
	readOnly := false
	switch req.Action {
	case "pod.evidence":
		run, verb, readOnly = (*Responder).collectEvidence, "collect evidence of", true
	case "pod.label":
		run, verb = (*Responder).labelPod, "label"
	case "pod.isolate":
		run, verb = (*Responder).isolate, "isolate"
	case "pod.release":
		run, verb = (*Responder).release, "release"
	case "pod.terminate":
		run, verb = (*Responder).terminate, "terminate"
	case "node.cordon":
		return r.runNode(ctx, req, "cordon", (*Responder).cordon)
	case "node.uncordon":
		return r.runNode(ctx, req, "uncordon", (*Responder).uncordon)
	default:
		return actions.Result{}, fmt.Errorf("kubernetes responder: unknown action %q", req.Action)
	}
	ref, err := target(req)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s pod: %w", verb, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	if !readOnly { // a long log read must not hold up an isolate
		unlock := r.lock(ref.ns)
		defer unlock()
	}

	pod, err := r.api.CoreV1().Pods(ref.ns).Get(ctx, ref.name, metav1.GetOptions{})
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s pod %s: %w", verb, ref, apiError("get", "pods", ref.ns, err))
	}
	reason, err := r.protectedReason(ctx, pod)
	if err != nil {
		return actions.Result{}, fmt.Errorf("%s pod %s: %w", verb, ref, err)
	}
	if reason != "" {
		r.log.Warn("refused: pod is protected", "action", req.Action, "pod", ref.String(), "reason", reason, "actor", req.Actor)
		return actions.Result{}, fmt.Errorf("%s pod %s: %w: %s", verb, ref, errPodProtected, reason)
	}
	start := r.now()
	res, err := run(r, ctx, req, pod)
	if err != nil {
		r.log.Warn("action failed", "action", req.Action, "pod", ref.String(), "actor", req.Actor, "err", err)
		return actions.Result{}, fmt.Errorf("%s pod %s: %w", verb, ref, err)
	}
	if res.Detail == nil {
		res.Detail = map[string]any{}
	}
	res.Detail["namespace"], res.Detail["pod"], res.Detail["pod_uid"] = ref.ns, ref.name, string(pod.UID)
	r.log.Info("action done", "action", req.Action, "pod", ref.String(), "actor", req.Actor, "note", res.Note, "took", r.now().Sub(start))
	return res, nil
}

// protectedError says what is protected ("pod is protected", not the
// "container is protected" of actions.ErrProtected) and is that error for
// errors.Is, so the engine journals it as blocked.
type protectedError string

func (e protectedError) Error() string { return string(e) + " is protected" }
func (e protectedError) Unwrap() error { return actions.ErrProtected }

const (
	errPodProtected  = protectedError("pod")
	errNodeProtected = protectedError("node")
)

// Protected reports whether the pod ns/name may not be touched, and why.
func (r *Responder) Protected(ctx context.Context, ns, name string) (bool, string, error) {
	pod, err := r.api.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, "", fmt.Errorf("check pod %s/%s protection: %w", ns, name, apiError("get", "pods", ns, err))
	}
	reason, err := r.protectedReason(ctx, pod)
	return reason != "", reason, err
}

func (r *Responder) protectedReason(ctx context.Context, pod *corev1.Pod) (string, error) {
	for _, p := range r.cfg.Protect.Namespaces {
		if ok, _ := path.Match(p, pod.Namespace); ok {
			return fmt.Sprintf("namespace %q matches protected namespace %q", pod.Namespace, p), nil
		}
	}
	if r.label.Matches(pod.Labels) {
		return "pod has label " + r.cfg.Protect.Label, nil
	}
	ns, err := r.api.CoreV1().Namespaces().Get(ctx, pod.Namespace, metav1.GetOptions{})
	if err != nil {
		return "", apiError("get", "namespaces", "", err)
	}
	if r.label.Matches(ns.Labels) {
		return fmt.Sprintf("namespace %q has label %s", pod.Namespace, r.cfg.Protect.Label), nil
	}
	return "", nil
}

func (r *Responder) lock(ns string) func() {
	r.mu.Lock()
	m, ok := r.locks[ns]
	if !ok {
		m = &sync.Mutex{}
		r.locks[ns] = m
	}
	r.mu.Unlock()
	m.Lock()
	return m.Unlock
}

// stamp returns the annotations that say which incident touched the pod.
func (r *Responder) stamp(req actions.Request) map[string]any {
	a := map[string]any{AnnotationTime: r.now().UTC().Format(time.RFC3339)}
	if req.Incident != "" {
		a[AnnotationIncident] = req.Incident
	}
	if req.Alert.Rule != "" {
		a[AnnotationRule] = req.Alert.Rule
	}
	return a
}

// patchMeta merge-patches the pod's labels and annotations; a nil value
// removes the key.
func (r *Responder) patchMeta(ctx context.Context, pod *corev1.Pod, labels, annotations map[string]any) (*corev1.Pod, error) {
	meta := map[string]any{}
	if len(labels) > 0 {
		meta["labels"] = labels
	}
	if len(annotations) > 0 {
		meta["annotations"] = annotations
	}
	body, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	out, err := r.api.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, body, metav1.PatchOptions{FieldManager: "riposte"})
	if err != nil {
		return nil, apiError("patch", "pods", pod.Namespace, err)
	}
	return out, nil
}

// labelPod is pod.label.
func (r *Responder) labelPod(ctx context.Context, req actions.Request, pod *corev1.Pod) (actions.Result, error) {
	labels, err := keyValues(req.Params, "labels", true)
	if err != nil {
		return actions.Result{}, err
	}
	annos, err := keyValues(req.Params, "annotations", false)
	if err != nil {
		return actions.Result{}, err
	}
	// Remember what was set so that pod.release can take it back.
	setLabels := joinKeys(pod.Annotations[AnnotationLabels], labels)
	setAnnos := joinKeys(pod.Annotations[AnnotationAnnotations], annos)
	for k, v := range r.stamp(req) {
		annos[k] = v
	}
	annos[AnnotationLabels], annos[AnnotationAnnotations] = setLabels, setAnnos
	out, err := r.patchMeta(ctx, pod, labels, annos)
	if err != nil {
		return actions.Result{}, err
	}
	var set, removed []string
	for k, v := range labels {
		if v == nil {
			removed = append(removed, k)
		} else {
			set = append(set, k)
		}
	}
	sort.Strings(set)
	sort.Strings(removed)
	return actions.Result{Note: fmt.Sprintf("labelled (%d set, %d removed)", len(set), len(removed)),
		Detail: map[string]any{"labels_set": set, "labels_removed": removed, "resource_version": out.ResourceVersion}}, nil
}

// keyValues reads a list of key=value parameters; key= (empty value) means
// remove, given as a nil value.
func keyValues(p actions.Params, name string, label bool) (map[string]any, error) {
	out := map[string]any{}
	v, ok := p[name]
	if !ok {
		return out, nil
	}
	list, err := actions.AsStringList(v)
	if err != nil {
		return nil, fmt.Errorf("parameter %s: %w", name, err)
	}
	for _, e := range list {
		k, val, ok := strings.Cut(e, "=")
		k = strings.TrimSpace(k)
		if !ok {
			return nil, fmt.Errorf("parameter %s: want key=value (key= removes), got %q", name, e)
		}
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, fmt.Errorf("parameter %s: bad key %q: %s", name, k, strings.Join(msgs, "; "))
		}
		if strings.HasPrefix(k, "riposte.io/") {
			return nil, fmt.Errorf("parameter %s: key %q is riposte's own", name, k)
		}
		if val == "" {
			out[k] = nil
			continue
		}
		if label {
			if msgs := validation.IsValidLabelValue(val); len(msgs) > 0 {
				return nil, fmt.Errorf("parameter %s: bad value %q for %s: %s", name, val, k, strings.Join(msgs, "; "))
			}
		}
		out[k] = val
	}
	return out, nil
}

// joinKeys adds the keys set in m to the comma-separated list old and drops
// the keys m removes.
func joinKeys(old string, m map[string]any) any {
	var keys []string
	for k := range strings.SplitSeq(old, ",") {
		if k != "" {
			keys = append(keys, k)
		}
	}
	for k, v := range m {
		i := slices.Index(keys, k)
		switch {
		case v == nil && i >= 0:
			keys = slices.Delete(keys, i, i+1)
		case v != nil && i < 0:
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// isolation is what pod.isolate was asked for.
type isolation struct {
	CIDRs      []string `json:"cidrs,omitempty"`
	Namespaces []string `json:"namespaces,omitempty"`
	EgressOnly bool     `json:"egress_only,omitempty"`
}

// variant names the policy for these options: "deny-all" for none, else a
// hash of them, so every set of options has its own policy and pods
// isolated with the same options share one.
func (iso isolation) variant() string {
	if len(iso.CIDRs) == 0 && len(iso.Namespaces) == 0 && !iso.EgressOnly {
		return "deny-all"
	}
	b, _ := json.Marshal(iso)
	sum := sha256.Sum256(b)
	return "v" + hex.EncodeToString(sum[:])[:12]
}

func isolationFrom(p actions.Params) (isolation, error) {
	var iso isolation
	var err error
	if v, ok := p["allow_cidrs"]; ok {
		if iso.CIDRs, err = actions.AsStringList(v); err != nil {
			return iso, fmt.Errorf("parameter allow_cidrs: %w", err)
		}
		for i, c := range iso.CIDRs {
			_, n, err := net.ParseCIDR(strings.TrimSpace(c))
			if err != nil {
				return iso, fmt.Errorf("parameter allow_cidrs: %q is not a CIDR such as 10.0.0.0/8", c)
			}
			iso.CIDRs[i] = n.String()
		}
	}
	if v, ok := p["allow_namespaces"]; ok {
		if iso.Namespaces, err = actions.AsStringList(v); err != nil {
			return iso, fmt.Errorf("parameter allow_namespaces: %w", err)
		}
		for i, n := range iso.Namespaces {
			iso.Namespaces[i] = strings.TrimSpace(n)
			if msgs := validation.IsDNS1123Label(iso.Namespaces[i]); len(msgs) > 0 {
				return iso, fmt.Errorf("parameter allow_namespaces: %q is not a namespace name: %s", n, strings.Join(msgs, "; "))
			}
		}
	}
	if iso.EgressOnly, err = p.Bool("egress_only", false); err != nil {
		return iso, err
	}
	sort.Strings(iso.CIDRs)
	sort.Strings(iso.Namespaces)
	iso.CIDRs, iso.Namespaces = slices.Compact(iso.CIDRs), slices.Compact(iso.Namespaces)
	return iso, nil
}

// policy returns the NetworkPolicy for variant v of iso in namespace ns.
func (r *Responder) policy(ns string, iso isolation, v string) *netv1.NetworkPolicy {
	var peers []netv1.NetworkPolicyPeer
	for _, c := range iso.CIDRs {
		peers = append(peers, netv1.NetworkPolicyPeer{IPBlock: &netv1.IPBlock{CIDR: c}})
	}
	for _, n := range iso.Namespaces {
		peers = append(peers, netv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{"kubernetes.io/metadata.name": n}}})
	}
	spec := netv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{r.cfg.QuarantineLabel: v}},
		PolicyTypes: []netv1.PolicyType{netv1.PolicyTypeEgress},
	}
	if len(peers) > 0 {
		spec.Egress = []netv1.NetworkPolicyEgressRule{{To: peers}}
	}
	if !iso.EgressOnly {
		spec.PolicyTypes = append([]netv1.PolicyType{netv1.PolicyTypeIngress}, spec.PolicyTypes...)
		if len(peers) > 0 {
			spec.Ingress = []netv1.NetworkPolicyIngressRule{{From: peers}}
		}
	}
	return &netv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: PolicyPrefix + v, Namespace: ns,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "riposte"}},
		Spec: spec,
	}
}

// isolate is pod.isolate.
func (r *Responder) isolate(ctx context.Context, req actions.Request, pod *corev1.Pod) (actions.Result, error) {
	iso, err := isolationFrom(req.Params)
	if err != nil {
		return actions.Result{}, err
	}
	v := iso.variant()
	want := r.policy(pod.Namespace, iso, v)
	pols := r.api.NetworkingV1().NetworkPolicies(pod.Namespace)
	pol, err := pols.Get(ctx, want.Name, metav1.GetOptions{})
	created := false
	switch {
	case apierrors.IsNotFound(err):
		pol, err = pols.Create(ctx, want, metav1.CreateOptions{FieldManager: "riposte"})
		if apierrors.IsAlreadyExists(err) { // another riposte made it first
			pol, err = pols.Get(ctx, want.Name, metav1.GetOptions{})
		} else if err == nil {
			created = true
		} else {
			return actions.Result{}, apiError("create", "networkpolicies", pod.Namespace, err)
		}
	}
	if err != nil {
		return actions.Result{}, apiError("get", "networkpolicies", pod.Namespace, err)
	}
	already := pod.Labels[r.cfg.QuarantineLabel] == v
	prev := pod.Labels[r.cfg.QuarantineLabel]
	if !already {
		labels := map[string]any{r.cfg.QuarantineLabel: v}
		if _, err := r.patchMeta(ctx, pod, labels, r.stamp(req)); err != nil {
			return actions.Result{}, err
		}
		if prev != "" { // moved to another variant: the old policy may be unused now
			if _, err := r.dropUnused(ctx, pod.Namespace, prev); err != nil {
				return actions.Result{}, err
			}
		}
	}
	note := "isolated"
	if already {
		note = "already isolated"
	}
	return actions.Result{Note: note, Detail: map[string]any{
		"policy": pol.Name, "policy_uid": string(pol.UID), "policy_resource_version": pol.ResourceVersion,
		"policy_created": created, "quarantine_label": r.cfg.QuarantineLabel + "=" + v,
		"allow_cidrs": iso.CIDRs, "allow_namespaces": iso.Namespaces, "egress_only": iso.EgressOnly,
	}}, nil
}

// release is pod.release.
func (r *Responder) release(ctx context.Context, req actions.Request, pod *corev1.Pod) (actions.Result, error) {
	labels := map[string]any{}
	annos := map[string]any{}
	v := pod.Labels[r.cfg.QuarantineLabel]
	if v != "" {
		labels[r.cfg.QuarantineLabel] = nil
	}
	for k := range strings.SplitSeq(pod.Annotations[AnnotationLabels], ",") {
		if k != "" {
			labels[k] = nil
		}
	}
	for k := range strings.SplitSeq(pod.Annotations[AnnotationAnnotations], ",") {
		if k != "" {
			annos[k] = nil
		}
	}
	for _, k := range []string{AnnotationIncident, AnnotationRule, AnnotationTime, AnnotationLabels, AnnotationAnnotations} {
		if _, ok := pod.Annotations[k]; ok {
			annos[k] = nil
		}
	}
	if len(labels) == 0 && len(annos) == 0 {
		return actions.Result{Note: "nothing to release"}, nil
	}
	if _, err := r.patchMeta(ctx, pod, labels, annos); err != nil {
		return actions.Result{}, err
	}
	detail := map[string]any{"labels_removed": len(labels), "annotations_removed": len(annos)}
	note := "released"
	if v != "" {
		deleted, err := r.dropUnused(ctx, pod.Namespace, v)
		if err != nil {
			return actions.Result{}, err
		}
		detail["policy"], detail["policy_deleted"] = PolicyPrefix+v, deleted
		if deleted {
			note = "released; quarantine policy deleted"
		}
	}
	return actions.Result{Note: note, Detail: detail}, nil
}

// dropUnused deletes the policy of variant v in ns when no pod carries it.
func (r *Responder) dropUnused(ctx context.Context, ns, v string) (bool, error) {
	sel := r.cfg.QuarantineLabel + "=" + v
	pods, err := r.api.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel, Limit: 1})
	if err != nil {
		return false, apiError("list", "pods", ns, err)
	}
	if len(pods.Items) > 0 {
		return false, nil
	}
	err = r.api.NetworkingV1().NetworkPolicies(ns).Delete(ctx, PolicyPrefix+v, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, apiError("delete", "networkpolicies", ns, err)
	}
	return true, nil
}

// apiError turns a client-go error into one that says what riposte tried
// and, for 403, which permission is missing.
func apiError(verb, resource, ns string, err error) error {
	where := resource
	if ns != "" {
		where += " in namespace " + ns
	}
	var status apierrors.APIStatus
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s %s: forbidden: riposte's credentials lack verb %q on resource %q (grant it in riposte's Role): %w", verb, where, verb, resource, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s %s: unauthorized: the API server rejected riposte's credentials: %w", verb, where, err)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s %s: %w: %w", verb, where, actions.ErrNotFound, err)
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsInternalError(err):
		return actions.Retryable(fmt.Errorf("%s %s: %w", verb, where, err))
	case errors.As(err, &status):
		return fmt.Errorf("%s %s: %w", verb, where, err)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", verb, where, err)
	}
	// Not an API status: the server could not be reached or timed out.
	return actions.Retryable(fmt.Errorf("%s %s: api server unreachable: %w", verb, where, err))
}
