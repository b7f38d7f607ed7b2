package kubernetes

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultProtectLabel    = "riposte.protect=true"
	DefaultQuarantineLabel = "riposte.quarantine"
	DefaultTimeout         = 30 * time.Second
	// DefaultQPS and DefaultBurst replace client-go's 5 and 10 (as kubectl
	// does): at 5 requests a second an isolate (5 requests) waited on the
	// client's own rate limiter as soon as a few alerts came at once
	// (measured: an alert-to-isolation p50 of 570 ms instead of 60 ms).
	DefaultQPS   = 50
	DefaultBurst = 300
)

// DefaultProtectedNamespaces are protected whatever the config says.
var DefaultProtectedNamespaces = []string{"kube-system", "kube-public", "kube-node-lease"}

// Config configures the Kubernetes responder. Every field is optional.
//
//	kubernetes:
//	  kubeconfig: /etc/riposte/kubeconfig   # else KUBECONFIG, ~/.kube/config, in-cluster
//	  context: staging
//	  timeout: 30s
//	  qps: 50           # client-side rate limit to the API server
//	  burst: 300
//	  quarantine_label: riposte.quarantine
//	  evidence_dir: /var/lib/riposte/evidence
//	  protect:
//	    label: riposte.protect=true
//	    namespaces: [riposte, "monitoring-*"]
type Config struct {
	// Kubeconfig is the kubeconfig file, like kubectl's --kubeconfig; ""
	// means $KUBECONFIG, then ~/.kube/config, then the in-cluster service
	// account when running in a pod.
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig context; "" means the current one.
	Context string `yaml:"context"`
	// Timeout bounds one API request and one whole action; default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// QPS and Burst bound riposte's requests to the API server (client-go's
	// rate limiter); default 50 and 300.
	QPS   float32 `yaml:"qps"`
	Burst int     `yaml:"burst"`
	// QuarantineLabel is the label key pod.isolate sets; default
	// riposte.quarantine.
	QuarantineLabel string `yaml:"quarantine_label"`
	// EvidenceDir receives pod.evidence bundles; default the Docker
	// responder's evidence directory, so that one incident's evidence is in
	// one folder.
	EvidenceDir string `yaml:"evidence_dir"`
	// Protect lists what no action may touch.
	Protect ProtectConfig `yaml:"protect"`
}

// ProtectConfig lists protected pods and namespaces.
type ProtectConfig struct {
	// Label protects every pod, and every pod of a namespace, that carries
	// it: "key=value", or "key" for any value. Default riposte.protect=true.
	Label string `yaml:"label"`
	// Namespaces are glob patterns (path.Match) added to the always
	// protected kube-system, kube-public and kube-node-lease.
	Namespaces []string `yaml:"namespaces"`
}

func (cfg Config) withDefaults() Config {
	if strings.TrimSpace(cfg.Protect.Label) == "" {
		cfg.Protect.Label = DefaultProtectLabel
	}
	if cfg.QuarantineLabel == "" {
		cfg.QuarantineLabel = DefaultQuarantineLabel
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	cfg.Protect.Namespaces = append(append([]string(nil), DefaultProtectedNamespaces...), cfg.Protect.Namespaces...)
	return cfg
}

// Validate reports every problem in cfg, joined.
func (cfg Config) Validate() error {
	user := cfg.Protect.Namespaces
	cfg = cfg.withDefaults()
	cfg.Protect.Namespaces = user
	var errs []error
	if k, _, _ := strings.Cut(cfg.Protect.Label, "="); len(validation.IsQualifiedName(strings.TrimSpace(k))) > 0 {
		errs = append(errs, fmt.Errorf("protect.label: want key=value or key with a valid label key, got %q", cfg.Protect.Label))
	}
	for i, p := range cfg.Protect.Namespaces {
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs = append(errs, fmt.Errorf("protect.namespaces[%d]: bad glob pattern %q", i, p))
		}
	}
	if msgs := validation.IsQualifiedName(cfg.QuarantineLabel); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("quarantine_label: %q is not a label key: %s", cfg.QuarantineLabel, strings.Join(msgs, "; ")))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", cfg.Timeout))
	}
	if cfg.QPS < 0 || cfg.Burst < 0 {
		errs = append(errs, fmt.Errorf("qps, burst: must not be negative, got %v and %d", cfg.QPS, cfg.Burst))
	}
	return errors.Join(errs...)
}

// RESTConfig loads the client configuration the way kubectl does: the
// kubeconfig file cfg names, else $KUBECONFIG, else ~/.kube/config, else
// the in-cluster service account.
func RESTConfig(cfg Config) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = cfg.Kubeconfig
	over := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig (kubeconfig %q, KUBECONFIG, ~/.kube/config, in-cluster): %w", cfg.Kubeconfig, err)
	}
	return rc, nil
}
