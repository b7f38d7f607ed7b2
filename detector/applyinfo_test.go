package detector

import (
	"testing"

	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/detector/event"
)

// TestApplyInfo: the runtime an event names comes from its cgroup layout
// first, then from whoever described the container (a containerd
// resolver), and is Docker's otherwise; an unknown container adds nothing.
func TestApplyInfo(t *testing.T) {
	cri := containers.Info{Name: "payments/api/app", Image: "registry/app", Tag: "2", Known: true, Runtime: "containerd",
		Labels: map[string]string{"io.kubernetes.pod.name": "api"}}
	tests := []struct {
		name        string
		layout      string // runtime the cgroup layout said
		info        containers.Info
		wantRuntime string
		wantName    string
	}{
		{"docker", "", containers.Info{Name: "web", Known: true}, "docker", "web"},
		{"containerd resolver", "", cri, "containerd", "payments/api/app"},
		{"layout wins", "cri-o", cri, "cri-o", "payments/api/app"},
		{"unknown", "", containers.Info{Name: "ghost"}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &event.Event{}
			ev.Container.Runtime = tt.layout
			applyInfo(ev, tt.info)
			if ev.Container.Runtime != tt.wantRuntime || ev.Container.Name != tt.wantName {
				t.Fatalf("runtime %q name %q, want %q %q", ev.Container.Runtime, ev.Container.Name, tt.wantRuntime, tt.wantName)
			}
		})
	}
	ev := &event.Event{}
	applyInfo(ev, cri)
	if ev.Container.Labels["io.kubernetes.pod.name"] != "api" || ev.Container.Image != "registry/app" || ev.Container.Tag != "2" {
		t.Fatalf("containerd's labels and image not applied: %+v", ev.Container)
	}
}
