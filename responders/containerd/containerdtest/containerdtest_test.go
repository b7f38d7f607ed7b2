package containerdtest

import (
	"testing"

	containerd "github.com/containerd/containerd/v2/client"
)

// TestRun: a task started through containerd runs in the test namespace,
// and its container carries the labels it was given.
func TestRun(t *testing.T) {
	cli := Client(t)
	ns, ctx := Namespace(t, cli)
	img := Image(t, cli, ctx)
	c, task := Run(t, cli, ctx, img, "probe", map[string]string{"a": "b"})
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Running {
		t.Fatalf("status %+v, %v; want running", st, err)
	}
	labels, err := c.Labels(ctx)
	if err != nil || labels["a"] != "b" {
		t.Fatalf("labels %v, %v", labels, err)
	}
	spec, err := c.Spec(ctx)
	if err != nil || spec.Linux == nil || spec.Linux.CgroupsPath != "/"+ns+"/probe" {
		t.Fatalf("spec cgroups path: %v", err)
	}
}
