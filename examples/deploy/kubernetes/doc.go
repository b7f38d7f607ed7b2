// Package kubedeploy holds riposte's Kubernetes manifests, a kustomize base
// (kustomization.yaml and the files it lists). Its tests load the config
// and playbooks the ConfigMaps carry, apply the base with
// `kubectl apply --dry-run=server` and then for real to a real API server,
// and run every Kubernetes action as the base's ServiceAccount: the role
// must suffice, and taking any one verb away from it must make an action
// fail, so it is no wider than the actions need.
//
// There is no code here but the tests.
package kubedeploy
