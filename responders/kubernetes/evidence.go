package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/evidence"
)

// Files of a pod evidence bundle; each container's log is LogFilePrefix +
// container name + ".txt".
const (
	PodFile            = "pod.json"
	OwnersFile         = "owners.json"
	EventsFile         = "events.json"
	NodeFile           = "node.json"
	ServiceAccountFile = "serviceaccount.json"
	LogFilePrefix      = "logs-"
)

// Evidence defaults, overridden by the action's parameters.
const (
	DefaultEvidenceMaxBytes = 256 << 20
	DefaultLogLines         = 10000
	DefaultLogBytes         = 16 << 20
	DefaultLogTimeout       = 10 * time.Second
	maxOwnerDepth           = 8
)

const bundleIDForm = "20060102T150405.000Z"

// PodManifest is manifest.json of a pod evidence bundle: the same shape as
// the Docker snapshot's, with the pod in place of the container. Its
// SHA-256 is the action's Result.SHA256, which the journal records.
type PodManifest struct {
	Version  int                `json:"version"`
	Snapshot string             `json:"snapshot"` // id, also the bundle directory's name
	Pod      ManifestPod        `json:"pod"`
	Incident string             `json:"incident"`
	Alert    string             `json:"alert,omitempty"`
	Actor    string             `json:"actor,omitempty"`
	Started  time.Time          `json:"started"`
	Finished time.Time          `json:"finished"`
	MaxBytes int64              `json:"max_bytes"`
	Files    []evidence.File    `json:"files"`
	Skipped  []evidence.Skipped `json:"skipped,omitempty"`
}

// ManifestPod identifies the pod a bundle was taken from and sums up what
// an investigator asks first.
type ManifestPod struct {
	Namespace      string   `json:"namespace"`
	Name           string   `json:"name"`
	UID            string   `json:"uid"`
	Node           string   `json:"node,omitempty"`
	Phase          string   `json:"phase,omitempty"`
	ServiceAccount string   `json:"service_account,omitempty"`
	Owners         []string `json:"owners,omitempty"` // Kind/name from the pod up
	// Secrets are the names (never the values) of the Secrets the pod
	// mounts, reads into its environment or pulls images with.
	Secrets    []string `json:"secrets,omitempty"`
	Containers []string `json:"containers"`
}

// OwnerObject is one link of the owner chain in owners.json.
type OwnerObject struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	UID    string `json:"uid"`
	Object any    `json:"object,omitempty"`
	// Unread says why Object is missing (a kind riposte does not read).
	Unread string `json:"unread,omitempty"`
}

type evidenceOpts struct {
	maxBytes, logLines, logBytes int64
	logTimeout                   time.Duration
}

func evidenceFrom(p actions.Params) (evidenceOpts, error) {
	var o evidenceOpts
	var err error
	if o.maxBytes, err = p.Bytes("max_bytes", DefaultEvidenceMaxBytes); err != nil {
		return o, err
	}
	if o.logLines, err = p.Int("log_lines", DefaultLogLines); err != nil {
		return o, err
	}
	if o.logBytes, err = p.Bytes("log_bytes", DefaultLogBytes); err != nil {
		return o, err
	}
	if o.logTimeout, err = p.Duration("log_timeout", DefaultLogTimeout); err != nil {
		return o, err
	}
	switch {
	case o.maxBytes <= 0:
		return o, fmt.Errorf("parameter max_bytes: want more than 0, got %d", o.maxBytes)
	case o.logLines < 0:
		return o, fmt.Errorf("parameter log_lines: want 0 or more, got %d", o.logLines)
	case o.logBytes <= 0:
		return o, fmt.Errorf("parameter log_bytes: want more than 0, got %d", o.logBytes)
	case o.logTimeout <= 0:
		return o, fmt.Errorf("parameter log_timeout: want more than 0, got %s", o.logTimeout)
	}
	return o, nil
}

// collectEvidence is pod.evidence: a bundle in
// <evidence_dir>/<incident>/<namespace>_<pod>/<bundle id>/ with the pod,
// its owner chain, its events, its node and service account, and each
// container's logs, sealed by a manifest listing every file's SHA-256.
// It reads only; it never reads a Secret.
func (r *Responder) collectEvidence(ctx context.Context, req actions.Request, pod *corev1.Pod) (actions.Result, error) {
	if r.cfg.EvidenceDir == "" {
		return actions.Result{}, errors.New("no evidence directory: set kubernetes.evidence_dir (or docker's data_dir) in the config")
	}
	o, err := evidenceFrom(req.Params)
	if err != nil {
		return actions.Result{}, err
	}
	started := r.now().UTC()
	incident := actions.PathSegment(req.Incident, "manual")
	// "_" is in neither a namespace nor a pod name: the folder name is
	// unambiguous.
	base := filepath.Join(r.cfg.EvidenceDir, incident, pod.Namespace+"_"+pod.Name)
	b, err := evidence.Create(base, started.Format(bundleIDForm), o.maxBytes)
	if err != nil {
		return actions.Result{}, err
	}
	m := PodManifest{Version: 1, Snapshot: b.ID(), Incident: incident, Alert: req.Alert.ID, Actor: req.Actor,
		Started: started, MaxBytes: o.maxBytes, Pod: summarize(pod)}
	if err := r.collectPod(ctx, b, &m, pod, o); err != nil {
		return actions.Result{}, b.Fail(err, "the max_bytes parameter")
	}
	m.Finished = r.now().UTC()
	m.Files, m.Skipped = b.Files(), b.Skipped()
	s, err := b.Seal(m)
	if err != nil {
		return actions.Result{}, err
	}
	res := s.Result("evidence", m.Skipped)
	res.Detail["owners"], res.Detail["node"] = m.Pod.Owners, m.Pod.Node
	return res, nil
}

// summarize reads the manifest's pod summary from the pod object.
func summarize(pod *corev1.Pod) ManifestPod {
	mp := ManifestPod{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName,
		Phase: string(pod.Status.Phase), ServiceAccount: pod.Spec.ServiceAccountName, Containers: []string{}}
	secrets := map[string]bool{}
	for _, s := range pod.Spec.ImagePullSecrets {
		secrets[s.Name] = true
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil {
			secrets[v.Secret.SecretName] = true
		}
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					secrets[src.Secret.Name] = true
				}
			}
		}
	}
	visit := func(cs []corev1.Container) {
		for _, c := range cs {
			mp.Containers = append(mp.Containers, c.Name)
			for _, e := range c.EnvFrom {
				if e.SecretRef != nil {
					secrets[e.SecretRef.Name] = true
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					secrets[e.ValueFrom.SecretKeyRef.Name] = true
				}
			}
		}
	}
	visit(pod.Spec.InitContainers)
	visit(pod.Spec.Containers)
	for _, e := range pod.Spec.EphemeralContainers {
		mp.Containers = append(mp.Containers, e.Name)
	}
	for s := range secrets {
		if s != "" {
			mp.Secrets = append(mp.Secrets, s)
		}
	}
	sort.Strings(mp.Secrets)
	return mp
}

// collectPod writes every part of the bundle but the manifest. API errors
// on the pod's surroundings (node, service account, events) are recorded
// as skipped parts, so that a role without one permission still gets the
// rest; an unreachable API server aborts the bundle.
func (r *Responder) collectPod(ctx context.Context, b *evidence.Bundle, m *PodManifest, pod *corev1.Pod, o evidenceOpts) error {
	obj := pod.DeepCopy()
	obj.APIVersion, obj.Kind = "v1", "Pod"
	if err := b.WriteJSON(PodFile, "the pod: spec and status, as the API server returned it", obj); err != nil {
		return err
	}
	soft := func(part string, err error) error {
		if actions.IsRetryable(err) {
			return err
		}
		b.Skip(part, err.Error())
		return nil
	}

	owners, err := r.ownerChain(ctx, pod)
	if err != nil {
		if err := soft(OwnersFile, err); err != nil {
			return err
		}
	}
	for _, ow := range owners {
		m.Pod.Owners = append(m.Pod.Owners, ow.Kind+"/"+ow.Name)
		if ow.Object == nil {
			b.Skip("owner "+ow.Kind+"/"+ow.Name, ow.Unread)
		}
	}
	if err == nil {
		if err := b.WriteJSON(OwnersFile, "the owner chain, from the pod's controller up", owners); err != nil {
			return err
		}
	}

	sel := fields.Set{"involvedObject.uid": string(pod.UID)}.AsSelector().String()
	events, err := r.api.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		if err := soft(EventsFile, apiError("list", "events", pod.Namespace, err)); err != nil {
			return err
		}
	} else {
		items := events.Items
		sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).Before(eventTime(items[j])) })
		if err := b.WriteJSON(EventsFile, "the pod's events, oldest first", items); err != nil {
			return err
		}
	}

	if pod.Spec.NodeName == "" {
		b.Skip(NodeFile, "pod is not scheduled on a node")
	} else if node, err := r.api.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{}); err != nil {
		if err := soft(NodeFile, apiError("get", "nodes", "", err)); err != nil {
			return err
		}
	} else {
		node.APIVersion, node.Kind = "v1", "Node"
		if err := b.WriteJSON(NodeFile, "the node the pod runs on", node); err != nil {
			return err
		}
	}

	saName := pod.Spec.ServiceAccountName
	if saName == "" {
		saName = "default"
	}
	if sa, err := r.api.CoreV1().ServiceAccounts(pod.Namespace).Get(ctx, saName, metav1.GetOptions{}); err != nil {
		if err := soft(ServiceAccountFile, apiError("get", "serviceaccounts", pod.Namespace, err)); err != nil {
			return err
		}
	} else {
		sa.APIVersion, sa.Kind = "v1", "ServiceAccount"
		if err := b.WriteJSON(ServiceAccountFile, "the pod's service account (secret names only)", sa); err != nil {
			return err
		}
	}

	for _, c := range m.Pod.Containers {
		if err := r.collectLogs(ctx, b, pod, c, o); err != nil {
			return err
		}
	}
	return nil
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.FirstTimestamp.Time
}

// collectLogs writes one container's log through the API server (which
// asks the node's kubelet). A kubelet that does not answer, or a container
// that has not started, is a skipped part "logs unavailable: …", not a
// failed bundle.
func (r *Responder) collectLogs(ctx context.Context, b *evidence.Bundle, pod *corev1.Pod, container string, o evidenceOpts) error {
	name := LogFilePrefix + container + ".txt"
	if o.logLines == 0 {
		b.Skip(name, "log_lines=0")
		return nil
	}
	if pod.Spec.NodeName == "" {
		b.Skip(name, "logs unavailable: pod is not scheduled on a node")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, o.logTimeout)
	defer cancel()
	opts := &corev1.PodLogOptions{Container: container, Timestamps: true, TailLines: &o.logLines, LimitBytes: &o.logBytes}
	rc, err := r.api.CoreV1().Pods(pod.Namespace).GetLogs(pod.Name, opts).Stream(ctx)
	if err != nil {
		b.Skip(name, "logs unavailable: "+apiError("get", "pods/log", pod.Namespace, err).Error())
		return nil
	}
	defer rc.Close()
	what := fmt.Sprintf("logs of container %s (--timestamps --tail %d --limit-bytes %d)", container, o.logLines, o.logBytes)
	var cut error
	err = b.Write(name, what, func(w io.Writer) error {
		_, err := io.Copy(w, rc)
		if err != nil && !errors.Is(err, evidence.ErrCap) {
			// The stream broke midway (kubelet gone, log_timeout): keep
			// what came, in the manifest, and say so.
			cut = err
			return nil
		}
		return err
	})
	if cut != nil {
		b.Skip(name+" (rest)", "logs cut short: "+cut.Error())
	}
	return err
}

// ownerChain walks the controller references from the pod up and reads
// each owner of a kind riposte knows (ReplicaSet, Deployment, StatefulSet,
// DaemonSet, Job, CronJob, ReplicationController); other kinds are named
// with the reason they were not read.
func (r *Responder) ownerChain(ctx context.Context, pod *corev1.Pod) ([]OwnerObject, error) {
	chain := []OwnerObject{}
	ref := metav1.GetControllerOf(pod)
	ns := pod.Namespace
	for depth := 0; ref != nil && depth < maxOwnerDepth; depth++ {
		link := OwnerObject{Kind: ref.Kind, Name: ref.Name, UID: string(ref.UID)}
		var obj metav1.Object
		var err error
		var resource string
		apps, batch := r.api.AppsV1(), r.api.BatchV1()
		switch ref.Kind {
		case "ReplicaSet":
			resource = "replicasets"
			obj, err = getOwner(ctx, apps.ReplicaSets(ns).Get, ref.Name, appsv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "Deployment":
			resource = "deployments"
			obj, err = getOwner(ctx, apps.Deployments(ns).Get, ref.Name, appsv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "StatefulSet":
			resource = "statefulsets"
			obj, err = getOwner(ctx, apps.StatefulSets(ns).Get, ref.Name, appsv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "DaemonSet":
			resource = "daemonsets"
			obj, err = getOwner(ctx, apps.DaemonSets(ns).Get, ref.Name, appsv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "Job":
			resource = "jobs"
			obj, err = getOwner(ctx, batch.Jobs(ns).Get, ref.Name, batchv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "CronJob":
			resource = "cronjobs"
			obj, err = getOwner(ctx, batch.CronJobs(ns).Get, ref.Name, batchv1.SchemeGroupVersion.WithKind(ref.Kind))
		case "ReplicationController":
			resource = "replicationcontrollers"
			obj, err = getOwner(ctx, r.api.CoreV1().ReplicationControllers(ns).Get, ref.Name, corev1.SchemeGroupVersion.WithKind(ref.Kind))
		default:
			link.Unread = fmt.Sprintf("kind %s (%s) is not one riposte reads", ref.Kind, ref.APIVersion)
		}
		if err != nil {
			// A missing owner or a role without this kind still leaves
			// the chain below it worth keeping.
			err = apiError("get", resource, ns, err)
			if actions.IsRetryable(err) {
				return chain, err
			}
			link.Unread = err.Error()
		}
		if obj != nil {
			link.Object = obj
		}
		chain = append(chain, link)
		if obj == nil {
			break
		}
		ref = metav1.GetControllerOf(obj)
		if ref != nil && slices.ContainsFunc(chain, func(o OwnerObject) bool { return o.UID == string(ref.UID) }) {
			break // a cycle: owner references are user-writable
		}
	}
	return chain, nil
}

// getOwner reads one owner through its typed client and sets its kind and
// API version, which the API server leaves empty in a typed Get, so that
// owners.json says what each object is.
func getOwner[T interface {
	metav1.Object
	runtime.Object
}](ctx context.Context, get func(context.Context, string, metav1.GetOptions) (T, error), name string, gvk schema.GroupVersionKind) (metav1.Object, error) {
	x, err := get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	x.GetObjectKind().SetGroupVersionKind(gvk)
	return x, nil
}
