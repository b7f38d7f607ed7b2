package kubernetes

import "github.com/riposte-sec/riposte/internal/actions"

var podParam = actions.Param{Name: "pod", Type: actions.String, Help: "NAMESPACE/NAME; default the alert's k8s.ns.name and k8s.pod.name"}

var nodeParam = actions.Param{Name: "node", Type: actions.String, Help: "NAME of the node; default the node of the pod (the pod parameter or the alert's)"}

// Specs describes the actions this responder implements.
func Specs() []actions.Spec {
	return []actions.Spec{
		{Name: "pod.label", Help: "Set labels and annotations on the pod, with riposte.incident and riposte.rule annotations; an empty value removes a key.",
			Params: []actions.Param{podParam,
				{Name: "labels", Type: actions.StringList, Help: "key=value entries; key= removes"},
				{Name: "annotations", Type: actions.StringList, Help: "key=value entries; key= removes"},
			},
			Privileges: []string{"get, patch on pods; get on namespaces"}},
		{Name: "pod.evidence", Help: "Collect an evidence bundle: the pod's spec and status, owner chain, events, node, service account, the names of the Secrets it uses (never values) and each container's logs; manifest with SHA-256 of every file.",
			Params: []actions.Param{podParam,
				{Name: "log_lines", Type: actions.Int, Default: "10000", Help: "last lines of each container's log; 0 skips logs"},
				{Name: "log_bytes", Type: actions.Bytes, Default: "16MiB", Help: "at most this much of each container's log"},
				{Name: "log_timeout", Type: actions.Duration, Default: "10s", Help: "how long to wait for a node's kubelet to send a log"},
				{Name: "max_bytes", Type: actions.Bytes, Default: "256MiB", Help: "cap on the whole bundle; past it the bundle is left .incomplete"},
			},
			Privileges: []string{"get on pods, pods/log, nodes, serviceaccounts, namespaces; list on events; get on replicasets, deployments, statefulsets, daemonsets, jobs, cronjobs, replicationcontrollers"}},
		{Name: "pod.isolate", Help: "Label the pod with the quarantine label and make sure a NetworkPolicy in its namespace selects it and denies all ingress and egress but the allow-lists.",
			Params: []actions.Param{podParam,
				{Name: "allow_cidrs", Type: actions.StringList, Help: "CIDRs still reachable both ways (e.g. 10.0.0.10/32)"},
				{Name: "allow_namespaces", Type: actions.StringList, Help: "namespaces still reachable both ways (e.g. kube-system for DNS, monitoring)"},
				{Name: "egress_only", Type: actions.Bool, Default: "false", Help: "deny egress only; leave ingress alone"},
			},
			Privileges:  []string{"get, patch, list on pods; get on namespaces; get, create on networkpolicies"},
			Destructive: true},
		{Name: "pod.release", Releases: true, Help: "Undo pod.isolate and pod.label: remove the quarantine label and what pod.label set, and delete the quarantine NetworkPolicy once no pod uses it.",
			Params:     []actions.Param{podParam},
			Privileges: []string{"get, patch, list on pods; get on namespaces; delete on networkpolicies"}},
		{Name: "pod.terminate", Help: "Delete the pod gracefully, or evict it (honouring PodDisruptionBudgets), after the replica guard and the bare/DaemonSet/StatefulSet refusals.",
			Params: []actions.Param{podParam,
				{Name: "evict", Type: actions.Bool, Default: "false", Help: "use the Eviction API, which a PodDisruptionBudget can refuse"},
				{Name: "grace_period", Type: actions.Duration, Help: "termination grace period; default the pod's own"},
				{Name: "min_healthy_replicas", Type: actions.Int, Default: "0", Help: "refuse when the owner's ready replicas minus one would fall below this (owner chain: ReplicaSet → Deployment, StatefulSet, DaemonSet)"},
				{Name: "refuse_bare_pods", Type: actions.Bool, Default: "false", Help: "refuse pods no controller owns"},
				{Name: "refuse_daemonsets", Type: actions.Bool, Default: "false", Help: "refuse DaemonSet pods"},
				{Name: "refuse_statefulsets", Type: actions.Bool, Default: "false", Help: "refuse StatefulSet pods"},
			},
			Privileges:  []string{"get, delete on pods; create on pods/eviction; get on namespaces; get on replicasets, deployments, statefulsets, daemonsets"},
			Destructive: true},
		{Name: "node.cordon", Help: "Mark the node (or the pod's node) unschedulable and label it riposte.io/cordoned=true with the incident; a node cordoned by someone else is left as is; a node with the protect label is refused.",
			Params:      []actions.Param{podParam, nodeParam},
			Privileges:  []string{"get on pods; get on namespaces; get, patch on nodes"},
			Destructive: true},
		{Name: "node.uncordon", Help: "Undo node.cordon on the node (or the pod's node): make it schedulable again, only if riposte cordoned it.",
			Params:     []actions.Param{podParam, nodeParam},
			Privileges: []string{"get on pods; get on namespaces; get, patch on nodes"}},
	}
}
