package integrations

import (
	"context"
	"testing"

	"github.com/riposte-sec/riposte/detector/containers"
	"github.com/riposte-sec/riposte/internal/cgroupctl/cgroupctltest"
	"github.com/riposte-sec/riposte/responders/containerd"
	"github.com/riposte-sec/riposte/responders/containerd/containerdtest"
)

// TestIntegrationContainerdEnrichment: the containerd row built from its
// section gives the detector's container cache what Docker cannot: the
// name, image and pod labels of a container made directly through
// containerd, and its pid.
func TestIntegrationContainerdEnrichment(t *testing.T) {
	cli := containerdtest.Client(t)
	ns, ctx := containerdtest.Namespace(t, cli)
	img := containerdtest.Image(t, cli, ctx)
	id := cgroupctltest.RandomID(t)
	_, task := containerdtest.Run(t, cli, ctx, img, id, map[string]string{
		containerd.LabelPodName: "api-7d9f", containerd.LabelPodNamespace: "payments", containerd.LabelContainerName: "app",
	})

	var row Integration
	for _, in := range Table() {
		if in.Name == "containerd" {
			row = in
		}
	}
	env := &Env{Data: t.TempDir()}
	b, err := BuildOne(env, row, func(out any) error {
		c := out.(*containerd.Config)
		c.Address, c.Namespaces = containerdtest.Address(t), []string{ns}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	r, ok := env.Value("containerd").(Containerd)
	if !ok {
		t.Fatalf("containerd's Value is %T", env.Value("containerd"))
	}
	cache := containers.New(nil, nil, r) // a node without Docker
	info := cache.Get(context.Background(), id)
	want := containers.Info{ID: id, Name: "payments/api-7d9f/app", Image: "docker.io/riposte/test", Tag: "1", Pid: int(task.Pid()), Running: true, Known: true, Runtime: "containerd"}
	if info.ID != want.ID || info.Name != want.Name || info.Image != want.Image || info.Tag != want.Tag || info.Pid != want.Pid ||
		info.Running != want.Running || !info.Known || info.Runtime != want.Runtime || info.Labels[containerd.LabelPodName] != "api-7d9f" {
		t.Fatalf("Get = %+v\nwant %+v with the pod labels", info, want)
	}
	if got := cache.Get(context.Background(), cgroupctltest.RandomID(t)); got.Known {
		t.Fatalf("an unknown id resolved: %+v", got)
	}
}
