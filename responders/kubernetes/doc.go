// Package kubernetes is the Kubernetes responder: the pod.* and node.*
// actions (pod.evidence, pod.label, pod.isolate, pod.release,
// pod.terminate, node.cordon, node.uncordon) against one cluster's API
// server through client-go.
//
// The target pod comes from the alert's k8s.ns.name and k8s.pod.name fields
// (Falco's, and the detector's when the container has CRI labels), or from
// the `pod: NAMESPACE/NAME` parameter of a hand-run action. Pods in a
// protected namespace, pods carrying the protect label and pods in a
// namespace carrying it are refused with an error wrapping
// actions.ErrProtected before anything is written.
//
// pod.isolate labels the pod with the quarantine label, whose value names a
// variant (deny-all, or a hash of the allow-lists), and makes sure a
// NetworkPolicy riposte-quarantine-<variant> in the pod's namespace selects
// that label and denies all ingress and egress but what the allow-lists
// permit. pod.release removes the label (and what pod.label set), and
// deletes the policy once no pod in the namespace carries its variant.
//
// pod.evidence writes a bundle (internal/evidence) under
// <evidence_dir>/<incident>/<namespace>_<pod>/: the pod, its owner chain,
// events, node and service account, and each container's log read through
// the API server from the node's kubelet; a kubelet that does not answer
// is a "logs unavailable: …" entry in the manifest, not a failure. It reads
// no Secret, only the names the pod spec gives. Its Result.SHA256 is the
// manifest's hash. It does not take the namespace lock: it writes nothing
// in the cluster.
//
// pod.terminate deletes (or evicts) the pod after its guards: the replica
// guard walks the controller chain and refuses, wrapping ErrRefused, when
// the owner's ready replicas minus one would fall below
// min_healthy_replicas. node.cordon marks the node (the node parameter, or
// the pod's node) unschedulable and labels it riposte.io/cordoned=true;
// node.uncordon lifts only that mark. A node carrying the protect label is
// refused like a protected pod.
//
// A Responder is safe for concurrent use; actions in one namespace are
// serialised so that a release cannot delete a policy an isolate is about
// to rely on. It owns no resources: nothing to close.
package kubernetes
