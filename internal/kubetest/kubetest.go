package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// BinEnv names the directory holding kube-apiserver and etcd.
const BinEnv = "RIPOSTE_KUBE_BIN"

// DefaultBinDir is where scripts/kube-bins.sh caches the binaries.
const DefaultBinDir = "/var/cache/riposte/kube-v1.34.4"

// LimitedUser is a user with a token and no permissions at all: tests bind
// the Roles they want to it and use LimitedConfig.
const LimitedUser = "riposte-limited"

// Server is one running etcd + kube-apiserver.
type Server struct {
	// URL is the API server's https address.
	URL string
	dir string
	ca  []byte

	adminToken, limitedToken string
	procs                    []*exec.Cmd
	logs                     []*bytes.Buffer
	client                   *kubernetes.Clientset

	kwokOnce sync.Once
	kwokErr  error
}

// BinDir returns the directory the binaries are taken from.
func BinDir() string {
	if d := os.Getenv(BinEnv); d != "" {
		return d
	}
	return DefaultBinDir
}

// missing says what is not there to run a server, or "".
func missing() string {
	for _, b := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(BinDir(), b)
		if _, err := os.Stat(p); err != nil {
			return fmt.Sprintf("needs %s (run scripts/kube-bins.sh and set %s): %v", b, BinEnv, err)
		}
	}
	return ""
}

// Require skips t locally, or fails it in CI, when the binaries are missing.
func Require(t testing.TB) {
	t.Helper()
	if reason := missing(); reason != "" {
		if testutil.Required() {
			t.Fatalf("kubernetes integration test cannot run: %s (%s=1 forbids skipping)", reason, testutil.RequireEnv)
		}
		t.Skipf("skipping kubernetes integration test: %s (set %s=1 to make this a failure)", reason, testutil.RequireEnv)
	}
}

// Start runs a server for t (see Require) and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatalf("start kubernetes control plane: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// New starts etcd and kube-apiserver with their state under dir and waits
// until the API server is ready. The caller calls Stop.
func New(dir string) (s *Server, err error) {
	if reason := missing(); reason != "" {
		return nil, errors.New(reason)
	}
	s = &Server{dir: dir, adminToken: randomToken(), limitedToken: randomToken()}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	if err := s.spawn("etcd", filepath.Join(BinDir(), "etcd"),
		"--name=kubetest", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=kubetest="+etcdPeer, "--log-level=error",
	); err != nil {
		return nil, err
	}
	if err := waitHTTP(etcdClient+"/health", nil, 30*time.Second); err != nil {
		return nil, fmt.Errorf("wait for etcd: %w\n%s", err, s.logs[0])
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate service-account key: %w", err)
	}
	keyFile := filepath.Join(dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, fmt.Errorf("write service-account key: %w", err)
	}
	tokens := filepath.Join(dir, "tokens.csv")
	csv := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n%s,%s,%s\n", s.adminToken, s.limitedToken, LimitedUser, LimitedUser)
	if err := os.WriteFile(tokens, []byte(csv), 0o600); err != nil {
		return nil, fmt.Errorf("write token file: %w", err)
	}
	certDir := filepath.Join(dir, "certs")
	s.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	if err := s.spawn("kube-apiserver", filepath.Join(BinDir(), "kube-apiserver"),
		"--etcd-servers="+etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[2]), "--cert-dir="+certDir,
		"--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-key-file="+keyFile, "--service-account-signing-key-file="+keyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--allow-privileged=true", // as kubeadm and managed clusters set it: riposte's node DaemonSet is privileged
		"--v=0",
	); err != nil {
		return nil, err
	}
	if err := waitFile(filepath.Join(certDir, "apiserver.crt"), s.procs[1], 30*time.Second); err != nil {
		return nil, fmt.Errorf("wait for kube-apiserver certificate: %w\n%s", err, tail(s.logs[1]))
	}
	if s.ca, err = os.ReadFile(filepath.Join(certDir, "apiserver.crt")); err != nil {
		return nil, fmt.Errorf("read kube-apiserver certificate: %w", err)
	}
	cfg := s.AdminConfig()
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver client: %w", err)
	}
	if err := waitHTTP(s.URL+"/readyz", hc, 60*time.Second, s.adminToken); err != nil {
		return nil, fmt.Errorf("wait for kube-apiserver /readyz: %w\n%s", err, tail(s.logs[1]))
	}
	if s.client, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("kube-apiserver clientset: %w", err)
	}
	return s, nil
}

// Stop ends kube-apiserver then etcd and waits for them.
func (s *Server) Stop() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		_ = p.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	s.procs = nil
}

// AdminConfig returns a client config for a user in system:masters.
func (s *Server) AdminConfig() *rest.Config {
	return s.config(s.adminToken)
}

// LimitedConfig returns a client config for LimitedUser, who may do only
// what a test bound to it.
func (s *Server) LimitedConfig() *rest.Config {
	return s.config(s.limitedToken)
}

func (s *Server) config(token string) *rest.Config {
	return &rest.Config{
		Host:            s.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: s.ca},
		QPS:             100,
		Burst:           200,
	}
}

// Client returns an admin clientset.
func (s *Server) Client() *kubernetes.Clientset { return s.client }

// Kubeconfig writes a kubeconfig file for cfg (AdminConfig or
// LimitedConfig) into dir and returns its path.
func (s *Server) Kubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest"}
	kc.CurrentContext = "kubetest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("write kubeconfig: %v", err)
	}
	return path
}

// Namespace creates a namespace named prefix-<random> with labels and its
// default ServiceAccount, deletes it when t ends, and returns its name.
func (s *Server) Namespace(t testing.TB, prefix string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name := prefix + "-" + randomToken()[:8]
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := s.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	})
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := s.client.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create default service account in %s: %v", name, err)
	}
	return name
}

// Pod creates a pod (busybox image, never pulled: no kubelet runs) with
// labels in namespace ns and returns it.
func (s *Server) Pod(t testing.TB, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "busybox"}}},
	}
	out, err := s.client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	return out
}

func (s *Server) spawn(name, bin string, args ...string) error {
	cmd := exec.Command(bin, args...)
	var buf bytes.Buffer
	cmd.Stdout = &syncWriter{w: &buf}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	s.procs = append(s.procs, cmd)
	s.logs = append(s.logs, &buf)
	return nil
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func waitHTTP(url string, hc *http.Client, timeout time.Duration, token ...string) error {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if len(token) > 0 {
			req.Header.Set("Authorization", "Bearer "+token[0])
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond) // polling a process we do not control
	}
	return fmt.Errorf("not ready after %s: %w", timeout, last)
}

func waitFile(path string, proc *exec.Cmd, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return nil
		}
		if proc.ProcessState != nil {
			return errors.New("process exited")
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control
	}
	return fmt.Errorf("%s not written after %s", path, timeout)
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b *bytes.Buffer) string {
	s := b.String()
	if len(s) > 4000 {
		s = s[len(s)-4000:]
	}
	return strings.TrimSpace(s)
}

// Kubectl returns the kubectl to run: the one in BinDir, else the one on
// PATH; without either it skips t locally and fails it in CI.
func Kubectl(t testing.TB) string {
	t.Helper()
	if p := filepath.Join(BinDir(), "kubectl"); fileExists(p) {
		return p
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		testutil.SkipOrFail(t, "kubernetes integration test needs kubectl (on PATH, or built into "+BinDir()+" by scripts/kube-bins.sh)")
	}
	return p
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
