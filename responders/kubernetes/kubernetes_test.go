package kubernetes

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

func TestIsolateCreatesDenyAllPolicyIdempotently(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "iso", nil)
	s.Pod(t, ns, "api-7d9f", map[string]string{"app": "api"})
	c := s.Client()

	res, err := run(t, r, "pod.isolate", falco(ns, "api-7d9f"), nil)
	if err != nil {
		t.Fatalf("isolate: %v", err)
	}
	if res.Note != "isolated" || res.Detail["policy_created"] != true {
		t.Fatalf("first isolate: note %q, detail %v", res.Note, res.Detail)
	}
	pol, err := c.NetworkingV1().NetworkPolicies(ns).Get(ctx(t), PolicyPrefix+"deny-all", get)
	if err != nil {
		t.Fatalf("read back policy: %v", err)
	}
	if res.Detail["policy_uid"] != string(pol.UID) || res.Detail["policy_resource_version"] != pol.ResourceVersion {
		t.Fatalf("detail has policy uid %v rv %v, server has %s %s", res.Detail["policy_uid"], res.Detail["policy_resource_version"], pol.UID, pol.ResourceVersion)
	}
	wantSel := map[string]string{DefaultQuarantineLabel: "deny-all"}
	if !reflect.DeepEqual(pol.Spec.PodSelector.MatchLabels, wantSel) || len(pol.Spec.PodSelector.MatchExpressions) != 0 {
		t.Fatalf("policy selects %v, want %v", pol.Spec.PodSelector, wantSel)
	}
	if !reflect.DeepEqual(pol.Spec.PolicyTypes, []netv1.PolicyType{netv1.PolicyTypeIngress, netv1.PolicyTypeEgress}) ||
		len(pol.Spec.Ingress) != 0 || len(pol.Spec.Egress) != 0 {
		t.Fatalf("policy does not deny all: types %v ingress %v egress %v", pol.Spec.PolicyTypes, pol.Spec.Ingress, pol.Spec.Egress)
	}
	// The policy selects the pod, and only it.
	sel, err := metav1.LabelSelectorAsSelector(&pol.Spec.PodSelector)
	if err != nil {
		t.Fatal(err)
	}
	s.Pod(t, ns, "bystander", map[string]string{"app": "api"})
	pods, err := c.CoreV1().Pods(ns).List(ctx(t), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil || len(pods.Items) != 1 || pods.Items[0].Name != "api-7d9f" {
		t.Fatalf("policy selects %v (err %v), want only api-7d9f", names(pods), err)
	}
	p := pods.Items[0]
	if p.Annotations[AnnotationIncident] != "inc-1" || p.Annotations[AnnotationRule] != "Terminal shell in container" {
		t.Fatalf("pod annotations %v lack the incident and rule", p.Annotations)
	}

	res2, err := run(t, r, "pod.isolate", falco(ns, "api-7d9f"), nil)
	if err != nil {
		t.Fatalf("second isolate: %v", err)
	}
	if res2.Note != "already isolated" || res2.Detail["policy_created"] != false || res2.Detail["policy_uid"] != string(pol.UID) {
		t.Fatalf("second isolate: note %q detail %v", res2.Note, res2.Detail)
	}
	again, err := c.CoreV1().Pods(ns).Get(ctx(t), "api-7d9f", get)
	if err != nil || again.ResourceVersion != p.ResourceVersion {
		t.Fatalf("second isolate wrote the pod (rv %s → %s, err %v)", p.ResourceVersion, again.ResourceVersion, err)
	}
	list, err := c.NetworkingV1().NetworkPolicies(ns).List(ctx(t), metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("want one policy after two isolates, got %d (err %v)", len(list.Items), err)
	}
}

func TestIsolateAllowLists(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	cases := []struct {
		name       string
		params     actions.Params
		types      []netv1.PolicyType
		peers      int // in each rule
		wantIngess bool
	}{
		{"cidrs and namespaces", actions.Params{"allow_cidrs": []any{"10.0.0.10/32", "192.168.1.7/24"}, "allow_namespaces": []any{"kube-system"}},
			[]netv1.PolicyType{netv1.PolicyTypeIngress, netv1.PolicyTypeEgress}, 3, true},
		{"egress only", actions.Params{"egress_only": true},
			[]netv1.PolicyType{netv1.PolicyTypeEgress}, 0, false},
		{"egress only with dns", actions.Params{"egress_only": "true", "allow_namespaces": "kube-system"},
			[]netv1.PolicyType{netv1.PolicyTypeEgress}, 1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := s.Namespace(t, "allow", nil)
			s.Pod(t, ns, "web", nil)
			res, err := run(t, r, "pod.isolate", falco(ns, "web"), tc.params)
			if err != nil {
				t.Fatalf("isolate: %v", err)
			}
			pol, err := s.Client().NetworkingV1().NetworkPolicies(ns).Get(ctx(t), res.Detail["policy"].(string), get)
			if err != nil {
				t.Fatalf("read back policy: %v", err)
			}
			if !reflect.DeepEqual(pol.Spec.PolicyTypes, tc.types) {
				t.Fatalf("policy types %v, want %v", pol.Spec.PolicyTypes, tc.types)
			}
			if tc.peers == 0 && len(pol.Spec.Egress) != 0 {
				t.Fatalf("egress rules %v, want none (deny all)", pol.Spec.Egress)
			}
			if tc.peers > 0 && (len(pol.Spec.Egress) != 1 || len(pol.Spec.Egress[0].To) != tc.peers) {
				t.Fatalf("egress %v, want one rule with %d peers", pol.Spec.Egress, tc.peers)
			}
			if got := len(pol.Spec.Ingress) > 0; got != tc.wantIngess {
				t.Fatalf("ingress rules %v, want some: %v", pol.Spec.Ingress, tc.wantIngess)
			}
			for _, peer := range pol.Spec.Egress[0:min(1, len(pol.Spec.Egress))] {
				for _, p := range peer.To {
					if p.IPBlock != nil && p.IPBlock.CIDR == "192.168.1.7/24" {
						t.Fatalf("CIDR kept its host bits: %v", p.IPBlock.CIDR)
					}
				}
			}
			pod, _ := s.Client().CoreV1().Pods(ns).Get(ctx(t), "web", get)
			if sel := pol.Spec.PodSelector.MatchLabels; pod.Labels[DefaultQuarantineLabel] != sel[DefaultQuarantineLabel] {
				t.Fatalf("pod labels %v do not match policy selector %v", pod.Labels, sel)
			}
		})
	}
}

func TestReleaseRemovesLabelAndUnusedPolicy(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "rel", nil)
	s.Pod(t, ns, "a", nil)
	s.Pod(t, ns, "b", nil)
	for _, p := range []string{"a", "b"} {
		if _, err := run(t, r, "pod.isolate", falco(ns, p), nil); err != nil {
			t.Fatalf("isolate %s: %v", p, err)
		}
	}
	res, err := run(t, r, "pod.release", falco(ns, "a"), nil)
	if err != nil {
		t.Fatalf("release a: %v", err)
	}
	if res.Detail["policy_deleted"] != false {
		t.Fatalf("release a deleted the policy b still uses: %v", res.Detail)
	}
	if _, err := s.Client().NetworkingV1().NetworkPolicies(ns).Get(ctx(t), PolicyPrefix+"deny-all", get); err != nil {
		t.Fatalf("policy gone while b is isolated: %v", err)
	}
	a, _ := s.Client().CoreV1().Pods(ns).Get(ctx(t), "a", get)
	if _, ok := a.Labels[DefaultQuarantineLabel]; ok {
		t.Fatalf("pod a still labelled: %v", a.Labels)
	}
	if _, ok := a.Annotations[AnnotationIncident]; ok {
		t.Fatalf("pod a still annotated: %v", a.Annotations)
	}
	// Hand-run, by the pod parameter.
	res, err = r.Run(ctx(t), actions.Request{Action: "pod.release", Params: actions.Params{"pod": ns + "/b"}, Actor: "cli:test"})
	if err != nil {
		t.Fatalf("release b: %v", err)
	}
	if res.Detail["policy_deleted"] != true {
		t.Fatalf("release b kept the unused policy: %v", res.Detail)
	}
	_, err = s.Client().NetworkingV1().NetworkPolicies(ns).Get(ctx(t), PolicyPrefix+"deny-all", get)
	if !apierrors.IsNotFound(err) {
		t.Fatalf("policy still there after the last release: %v", err)
	}
	res, err = run(t, r, "pod.release", falco(ns, "b"), nil)
	if err != nil || res.Note != "nothing to release" {
		t.Fatalf("second release: %q, %v", res.Note, err)
	}
}

func TestLabelSetsAndRemoves(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "lbl", nil)
	s.Pod(t, ns, "web", map[string]string{"app": "web", "tier": "front"})

	_, err := run(t, r, "pod.label", falco(ns, "web"), actions.Params{
		"labels": []any{"riposte/suspect=true", "tier="}, "annotations": []any{"note=shell seen"}})
	if err != nil {
		t.Fatalf("label: %v", err)
	}
	p, _ := s.Client().CoreV1().Pods(ns).Get(ctx(t), "web", get)
	if p.Labels["riposte/suspect"] != "true" || p.Labels["app"] != "web" {
		t.Fatalf("labels %v: want riposte/suspect=true and app kept", p.Labels)
	}
	if _, ok := p.Labels["tier"]; ok {
		t.Fatalf("tier= did not remove the label: %v", p.Labels)
	}
	if p.Annotations["note"] != "shell seen" || p.Annotations[AnnotationIncident] != "inc-1" || p.Annotations[AnnotationTime] == "" {
		t.Fatalf("annotations %v", p.Annotations)
	}
	_, err = run(t, r, "pod.label", falco(ns, "web"), actions.Params{"annotations": "note="})
	if err != nil {
		t.Fatalf("remove annotation: %v", err)
	}
	p, _ = s.Client().CoreV1().Pods(ns).Get(ctx(t), "web", get)
	if _, ok := p.Annotations["note"]; ok {
		t.Fatalf("note= did not remove the annotation: %v", p.Annotations)
	}
	if _, err := run(t, r, "pod.release", falco(ns, "web"), nil); err != nil {
		t.Fatalf("release: %v", err)
	}
	p, _ = s.Client().CoreV1().Pods(ns).Get(ctx(t), "web", get)
	if !reflect.DeepEqual(p.Labels, map[string]string{"app": "web"}) || len(p.Annotations) != 0 {
		t.Fatalf("after release labels %v annotations %v, want app=web only", p.Labels, p.Annotations)
	}

	for _, bad := range []actions.Params{
		{"labels": "novalue"}, {"labels": "k=has space"}, {"labels": "bad key=1"}, {"annotations": "riposte.io/incident=x"},
	} {
		if _, err := run(t, r, "pod.label", falco(ns, "web"), bad); err == nil || !strings.Contains(err.Error(), "parameter") {
			t.Errorf("params %v: err %v, want a parameter error", bad, err)
		}
	}
}

func TestProtectedRefusedAndUntouched(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{Protect: ProtectConfig{Namespaces: []string{"vault-*"}}})
	c := s.Client()
	if _, err := c.CoreV1().ServiceAccounts("kube-system").Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	sysPod := "coredns-" + strings.ToLower(t.Name()[:4])
	s.Pod(t, "kube-system", sysPod, nil)
	t.Cleanup(func() { _ = c.CoreV1().Pods("kube-system").Delete(ctx(t), sysPod, metav1.DeleteOptions{}) })
	plain := s.Namespace(t, "prot", nil)
	s.Pod(t, plain, "db", map[string]string{"riposte.protect": "True"})
	guarded := s.Namespace(t, "guarded", map[string]string{"riposte.protect": "true"})
	s.Pod(t, guarded, "web", nil)
	vault := s.Namespace(t, "vault", nil)
	s.Pod(t, vault, "vault-0", nil)

	cases := []struct{ ns, pod, reason string }{
		{"kube-system", sysPod, `protected namespace "kube-system"`},
		{plain, "db", "pod has label riposte.protect=true"},
		{guarded, "web", "has label riposte.protect=true"},
		{vault, "vault-0", `protected namespace "vault-*"`},
	}
	for _, tc := range cases {
		for _, action := range []string{"pod.isolate", "pod.label", "pod.release", "pod.evidence"} {
			t.Run(tc.ns+"/"+action, func(t *testing.T) {
				before, _ := c.CoreV1().Pods(tc.ns).Get(ctx(t), tc.pod, get)
				_, err := run(t, r, action, falco(tc.ns, tc.pod), actions.Params{"labels": "x=y"})
				if !errors.Is(err, actions.ErrProtected) || !strings.Contains(err.Error(), tc.reason) {
					t.Fatalf("err %v, want ErrProtected naming %q", err, tc.reason)
				}
				after, _ := c.CoreV1().Pods(tc.ns).Get(ctx(t), tc.pod, get)
				if after.ResourceVersion != before.ResourceVersion {
					t.Fatalf("protected pod written: rv %s → %s", before.ResourceVersion, after.ResourceVersion)
				}
				pols, err := c.NetworkingV1().NetworkPolicies(tc.ns).List(ctx(t), metav1.ListOptions{})
				if err != nil || len(pols.Items) != 0 {
					t.Fatalf("policies in protected namespace: %v (err %v)", names(pols), err)
				}
			})
		}
	}
}

func TestForbiddenNamesVerbAndResource(t *testing.T) {
	s := cluster(t)
	c := s.Client()
	ns := s.Namespace(t, "rbac", nil)
	s.Pod(t, ns, "web", nil)
	// The limited user may read pods and namespaces, nothing else.
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "read-pods", Namespace: ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}}}
	if _, err := c.RbacV1().Roles(ns).Create(ctx(t), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	subj := []rbacv1.Subject{{Kind: rbacv1.UserKind, Name: "riposte-limited", APIGroup: rbacv1.GroupName}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-pods", Namespace: ns}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-pods"}}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx(t), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "read-ns-" + ns},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}}}}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "read-ns-" + ns}, Subjects: subj,
		RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx(t), cr, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx(t), crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.RbacV1().ClusterRoleBindings().Delete(ctx(t), crb.Name, metav1.DeleteOptions{})
		_ = c.RbacV1().ClusterRoles().Delete(ctx(t), cr.Name, metav1.DeleteOptions{})
	})
	// Through a kubeconfig file, the way an operator configures it.
	r, err := New(Config{Kubeconfig: s.Kubeconfig(t, s.LimitedConfig())}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ action, want string }{
		{"pod.label", `lack verb "patch" on resource "pods"`},
		{"pod.isolate", `lack verb "get" on resource "networkpolicies"`},
	}
	for _, tc := range cases {
		t.Run(tc.action, func(t *testing.T) {
			before, _ := c.CoreV1().Pods(ns).Get(ctx(t), "web", get)
			_, err := run(t, r, tc.action, falco(ns, "web"), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "namespace "+ns) {
				t.Fatalf("err %v, want it to say %s in namespace %s", err, tc.want, ns)
			}
			if actions.IsRetryable(err) {
				t.Fatalf("403 marked retryable: %v", err)
			}
			after, _ := c.CoreV1().Pods(ns).Get(ctx(t), "web", get)
			if after.ResourceVersion != before.ResourceVersion {
				t.Fatal("pod written despite the refusal")
			}
		})
	}
}

func TestMissingPodIsNotFound(t *testing.T) {
	s := cluster(t)
	r := newResponder(t, s, Config{})
	ns := s.Namespace(t, "gone", nil)
	_, err := run(t, r, "pod.isolate", falco(ns, "nope"), nil)
	if !errors.Is(err, actions.ErrNotFound) || !strings.Contains(err.Error(), ns+"/nope") {
		t.Fatalf("err %v, want ErrNotFound naming the pod", err)
	}
}

func TestTargetAndConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		req  actions.Request
		want string
	}{
		{"no pod", actions.Request{Action: "pod.isolate"}, "no k8s.ns.name"},
		{"bad param", actions.Request{Action: "pod.isolate", Params: actions.Params{"pod": "justname"}}, "want NAMESPACE/NAME"},
		{"bad namespace", actions.Request{Action: "pod.isolate", Params: actions.Params{"pod": "Bad_NS/x"}}, `bad namespace "Bad_NS"`},
		{"bad name", actions.Request{Action: "pod.isolate", Alert: alert.Alert{OutputFields: map[string]any{"k8s.ns.name": "a", "k8s.pod.name": "../x"}}}, `bad pod name "../x"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := target(tc.req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	bad := []struct {
		cfg  Config
		want string
	}{
		{Config{Protect: ProtectConfig{Label: "=x"}}, "protect.label"},
		{Config{Protect: ProtectConfig{Namespaces: []string{"[a"}}}, "protect.namespaces[0]"},
		{Config{QuarantineLabel: "has space"}, "quarantine_label"},
		{Config{Timeout: -1}, "timeout"},
		{Config{QPS: -1}, "qps, burst"},
	}
	for _, b := range bad {
		if err := b.cfg.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate(%+v) = %v, want an error about %s", b.cfg, err, b.want)
		}
	}
	t.Setenv("KUBECONFIG", "/nonexistent/kubeconfig")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "load kubeconfig") {
		t.Fatalf("New without any kubeconfig: %v", err)
	}
}

func TestKubeconfigFromEnv(t *testing.T) {
	s := cluster(t)
	t.Setenv("KUBECONFIG", s.Kubeconfig(t, s.AdminConfig()))
	r, err := New(Config{}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ns := s.Namespace(t, "env", nil)
	s.Pod(t, ns, "web", nil)
	if protected, reason, err := r.Protected(ctx(t), ns, "web"); err != nil || protected {
		t.Fatalf("Protected = %v %q %v", protected, reason, err)
	}
}

func names(l any) []string {
	var out []string
	switch x := l.(type) {
	case *corev1.PodList:
		for _, p := range x.Items {
			out = append(out, p.Name)
		}
	case *netv1.NetworkPolicyList:
		for _, p := range x.Items {
			out = append(out, p.Name)
		}
	}
	return out
}
