// Package kubetest runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver (RBAC on, static token authentication, service-account
// keys) on random loopback ports, with data in a temporary directory. No
// controller-manager or kubelet runs: pods stay Pending, and Namespace
// creates the `default` ServiceAccount the admission plugin asks for.
// KwokNode adds a node that kwok runs (started once per Server): pods bound
// to it go Running and Ready and deleted ones are removed, as a kubelet
// would; SyncReadyReplicas then writes the ready counts a ReplicaSet
// controller would. Kubelet stands in for a kubelet where the API server
// asks one for container logs.
//
// The binaries come from the directory scripts/kube-bins.sh prints, named by
// $RIPOSTE_KUBE_BIN (default /var/cache/riposte/kube-v1.34.4). When they are
// missing, Require skips the test locally and fails it in CI
// (RIPOSTE_REQUIRE_INTEGRATION=1).
//
// A Server is safe for concurrent use once started. Start stops it with
// t.Cleanup; servers made by New are stopped by their owner with Stop.
//
// Only tests import it.
package kubetest
