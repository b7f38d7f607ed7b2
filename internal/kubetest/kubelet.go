package kubetest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubelet stands in for one node's kubelet where the API server asks it for
// container logs: GET /containerLogs/NAMESPACE/POD/CONTAINER. It answers
// with Logs[CONTAINER], or 400 "waiting to start" for a container it has no
// log for, the way a kubelet does for a container that never started.
type Kubelet struct {
	Node string
	// Logs by container name; set before the first request.
	Logs map[string]string
	// Stall lists containers whose log, once sent, is followed by nothing
	// until the request is given up: a kubelet that hangs midway.
	Stall map[string]bool
	srv   *httptest.Server
}

// Kubelet starts a stand-in kubelet on a loopback port and registers a Ready
// node name whose kubelet endpoint is it; both go away when t ends.
func (s *Server) Kubelet(t testing.TB, name string, logs map[string]string) *Kubelet {
	t.Helper()
	k := &Kubelet{Node: name, Logs: logs}
	k.srv = httptest.NewTLSServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.srv.Close)
	_, portStr, _ := net.SplitHostPort(k.srv.Listener.Addr().String())
	port, _ := strconv.Atoi(portStr)
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{
			Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(port)}},
			Conditions:      []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	return k
}

func (k *Kubelet) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if r.Method != http.MethodGet || len(parts) != 4 || parts[0] != "containerLogs" {
		http.NotFound(w, r)
		return
	}
	log, ok := k.Logs[parts[3]]
	if !ok {
		http.Error(w, "container \""+parts[3]+"\" is waiting to start: ContainerCreating", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, log)
	if k.Stall[parts[3]] {
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}
