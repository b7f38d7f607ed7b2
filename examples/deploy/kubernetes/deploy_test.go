package kubedeploy

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/riposte-sec/riposte/cmd/riposte/assembly/integrations"
	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/evidence"
	"github.com/riposte-sec/riposte/internal/kubetest"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/playbooks"
	k8sresponder "github.com/riposte-sec/riposte/responders/kubernetes"
)

// docs reads the YAML documents of a manifest file.
func docs(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for d := range strings.SplitSeq(string(b), "\n---\n") {
		if strings.TrimSpace(d) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func configMaps(t *testing.T) map[string]corev1.ConfigMap {
	t.Helper()
	out := map[string]corev1.ConfigMap{}
	for _, d := range docs(t, "config.yaml") {
		var cm corev1.ConfigMap
		if err := yaml.UnmarshalStrict(d, &cm); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
		out[cm.Name] = cm
	}
	return out
}

// TestConfigMapsLoad loads the config files and playbooks the ConfigMaps
// carry, as riposte would at /etc/riposte.
func TestConfigMapsLoad(t *testing.T) {
	cms := configMaps(t)
	dir := t.TempDir()
	for _, name := range []string{"riposte.yaml", "node.yaml"} {
		body := cms["riposte-config"].Data[name]
		cfg, err := config.Parse(filepath.Join(dir, name), []byte(body))
		if err != nil {
			t.Fatalf("riposte-config %s: %v", name, err)
		}
		if err := cfg.Unknown(integrations.Sections()); err != nil {
			t.Errorf("riposte-config %s: %v", name, err)
		}
		if cfg.Data != "/var/lib/riposte" || cfg.Auth.TokenFile != "/etc/riposte/token/token" || !slices.Equal(cfg.Playbooks, []string{"/etc/riposte/playbooks"}) {
			t.Errorf("%s: data %q token_file %q playbooks %v; the pod mounts /var/lib/riposte, /etc/riposte/token, /etc/riposte/playbooks", name, cfg.Data, cfg.Auth.TokenFile, cfg.Playbooks)
		}
		if name == "riposte.yaml" {
			var kc k8sresponder.Config
			if err := config.Decode(cfg.File, "kubernetes", cfg.Section("kubernetes"), &kc); err != nil {
				t.Fatal(err)
			}
			if err := kc.Validate(); err != nil || kc.Kubeconfig != "" || !slices.Contains(kc.Protect.Namespaces, "riposte") {
				t.Errorf("kubernetes section: %+v (%v); want in-cluster, riposte's namespace protected", kc, err)
			}
		}
	}
	for _, cm := range []string{"riposte-playbooks", "riposte-node-playbooks"} {
		pdir := filepath.Join(dir, cm)
		if err := os.MkdirAll(pdir, 0o750); err != nil {
			t.Fatal(err)
		}
		for name, body := range cms[cm].Data {
			if err := os.WriteFile(filepath.Join(pdir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		set, err := playbooks.Load(integrations.Catalog(), pdir)
		if err != nil {
			t.Fatalf("%s: %v", cm, err)
		}
		if len(set.Playbooks()) == 0 {
			t.Fatalf("%s holds no playbook", cm)
		}
	}
}

func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	cmd := exec.Command(kubetest.Kubectl(t), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// TestManifestsApplyAndRoleIsExact applies the base to a real API server,
// first with --dry-run=server, then for real; runs every Kubernetes action
// as the riposte ServiceAccount (all must pass, none forbidden); then takes
// each verb of the ClusterRole away in turn and sees an action fail for
// lack of exactly that verb.
func TestManifestsApplyAndRoleIsExact(t *testing.T) {
	k := kubetest.Start(t)
	kc := k.Kubeconfig(t, k.AdminConfig())

	// Namespaced objects need their namespace to exist, even in a dry run.
	out := kubectl(t, kc, "apply", "--dry-run=server", "-f", "namespace.yaml")
	if !strings.Contains(out, "namespace/riposte created (server dry run)") {
		t.Fatalf("dry run of namespace.yaml: %s", out)
	}
	kubectl(t, kc, "apply", "-f", "namespace.yaml")
	rendered := kubectl(t, kc, "kustomize", ".")
	objects := strings.Count(rendered, "\n---\n") + 1
	out = kubectl(t, kc, "apply", "--dry-run=server", "-k", ".")
	if got := strings.Count(out, "(server dry run)"); got != objects {
		t.Fatalf("dry run applied %d objects, the base renders %d:\n%s", got, objects, out)
	}
	kubectl(t, kc, "apply", "-k", ".")

	sa := serviceAccountConfig(t, k, "riposte")
	failures := suite(t, k, sa)
	if len(failures) > 0 {
		t.Fatalf("as ServiceAccount riposte:riposte, the actions failed:\n%s", strings.Join(failures, "\n"))
	}
	// And nothing wider: no Secret, no change to workloads.
	cs, err := kubernetes.NewForConfig(sa)
	if err != nil {
		t.Fatal(err)
	}
	for _, ra := range []authzv1.ResourceAttributes{
		{Verb: "get", Resource: "secrets", Namespace: "default"},
		{Verb: "list", Resource: "secrets"},
		{Verb: "update", Group: "apps", Resource: "deployments", Namespace: "default"},
		{Verb: "create", Resource: "pods/exec", Namespace: "default"},
		{Verb: "delete", Resource: "nodes"},
	} {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx(t), &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status.Allowed {
			t.Errorf("ServiceAccount riposte may %s %s/%s: the role is wider than the actions need", ra.Verb, ra.Group, ra.Resource)
		}
	}

	role := clusterRole(t)
	type grant struct{ group, resource, verb string }
	var grants []grant
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					grants = append(grants, grant{g, res, v})
				}
			}
		}
	}
	for i, drop := range grants {
		t.Run(fmt.Sprintf("without %s %s", drop.verb, drop.resource), func(t *testing.T) {
			name := fmt.Sprintf("riposte-minus-%d", i)
			minus := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
			for _, g := range grants {
				if g != drop {
					minus.Rules = append(minus.Rules, rbacv1.PolicyRule{APIGroups: []string{g.group}, Resources: []string{g.resource}, Verbs: []string{g.verb}})
				}
			}
			c := k.Client()
			if _, err := c.RbacV1().ClusterRoles().Create(ctx(t), minus, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.CoreV1().ServiceAccounts("riposte").Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "riposte"}},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}
			if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx(t), crb, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			failures := suite(t, k, serviceAccountConfig(t, k, name))
			res := drop.resource
			wantMsg := fmt.Sprintf("lack verb %q on resource %q", drop.verb, res)
			if !slices.ContainsFunc(failures, func(f string) bool { return strings.Contains(f, wantMsg) }) {
				t.Fatalf("without %s on %s no action failed for it: the role grants more than the actions use (failures: %q)", drop.verb, res, failures)
			}
		})
	}
}

func clusterRole(t *testing.T) rbacv1.ClusterRole {
	t.Helper()
	for _, d := range docs(t, "rbac.yaml") {
		var role rbacv1.ClusterRole
		if err := yaml.Unmarshal(d, &role); err != nil {
			t.Fatal(err)
		}
		if role.Kind == "ClusterRole" {
			return role
		}
	}
	t.Fatal("rbac.yaml has no ClusterRole")
	return rbacv1.ClusterRole{}
}

// serviceAccountConfig is a client config with a token of ServiceAccount
// riposte/name from the TokenRequest API, as a pod would mount it.
func serviceAccountConfig(t *testing.T, k *kubetest.Server, name string) *rest.Config {
	t.Helper()
	exp := int64(3600)
	tr, err := k.Client().CoreV1().ServiceAccounts("riposte").CreateToken(ctx(t), name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account riposte/%s: %v", name, err)
	}
	cfg := k.AdminConfig()
	cfg.BearerToken = tr.Status.Token
	// The authorizer learns of a new binding through a watch: wait until
	// it grants the binding's role (every role here grants get on pods or,
	// when that is the verb taken away, get on namespaces), or a suite run
	// would fail for the wrong reason.
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(resource string) bool {
		ra := authzv1.ResourceAttributes{Verb: "get", Resource: resource, Namespace: "riposte"}
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx(t), &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return allowed("pods") || allowed("namespaces") },
		"service account riposte/%s never granted its role", name)
	return cfg
}

// suite runs every Kubernetes action, as the playbooks would, against
// fresh workloads, with the identity rc; it returns every failure, and
// every part of an evidence bundle skipped, as text.
func suite(t *testing.T, k *kubetest.Server, rc *rest.Config) []string {
	t.Helper()
	r, err := k8sresponder.New(k8sresponder.Config{EvidenceDir: t.TempDir()}, k8sresponder.Deps{REST: rc})
	if err != nil {
		t.Fatal(err)
	}
	ns := k.Namespace(t, "suite", nil)
	node := "node-" + ns
	k.Kubelet(t, node, map[string]string{"main": "hello\n"})
	web := k.Deployment(t, ns, "web", 3)
	k.ScheduledPod(t, ns, "web-a", node, web)
	k.ScheduledPod(t, ns, "web-b", node, web)
	k.ScheduledPod(t, ns, "web-c", node, web)
	for _, kind := range []string{"StatefulSet", "DaemonSet", "Job", "ReplicationController"} {
		k.ScheduledPod(t, ns, strings.ToLower(kind)+"-0", node, k.Workload(t, ns, kind, strings.ToLower(kind), 3))
	}
	steps := []struct {
		action, pod string
		params      actions.Params
	}{
		{"pod.evidence", "web-a", nil},
		{"pod.label", "web-a", actions.Params{"labels": "suspect=true"}},
		{"pod.isolate", "web-a", nil},
		{"pod.release", "web-a", nil},
		{"node.cordon", "web-a", nil},
		{"node.uncordon", "web-a", nil},
		{"pod.terminate", "web-b", actions.Params{"min_healthy_replicas": 1}},
		{"pod.terminate", "web-c", actions.Params{"min_healthy_replicas": 1, "evict": true}},
		{"pod.terminate", "statefulset-0", actions.Params{"min_healthy_replicas": 1, "grace_period": "0s"}},
		{"pod.terminate", "daemonset-0", actions.Params{"min_healthy_replicas": 1, "grace_period": "0s"}},
		{"pod.evidence", "job-0", actions.Params{"log_lines": 0}},
		{"pod.evidence", "replicationcontroller-0", actions.Params{"log_lines": 0}},
	}
	var failures []string
	for _, s := range steps {
		a := alert.Alert{ID: "suite", Rule: "Terminal shell in container", Priority: alert.PriorityWarning,
			OutputFields: map[string]any{"k8s.ns.name": ns, "k8s.pod.name": s.pod}}
		res, err := r.Run(ctx(t), actions.Request{Action: s.action, Alert: a, Params: s.params, Incident: "inc-suite", Actor: "test"})
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s %s: %v", s.action, s.pod, err))
			continue
		}
		if sk, ok := res.Detail["skipped"].([]evidence.Skipped); ok {
			for _, p := range sk {
				if p.Reason != "log_lines=0" {
					failures = append(failures, fmt.Sprintf("%s %s: skipped %s: %s", s.action, s.pod, p.Name, p.Reason))
				}
			}
		}
	}
	return failures
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}
