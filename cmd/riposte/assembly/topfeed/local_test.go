package topfeed

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/riposte-sec/riposte/internal/guard"
)

// dockerStub answers with fixed containers and, per call, the next CPU and
// memory sample.
type dockerStub struct {
	list    []container.Summary
	samples map[string][]container.StatsResponse
	calls   map[string]int
}

func (d *dockerStub) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return d.list, nil
}

func (d *dockerStub) ContainerStatsOneShot(_ context.Context, id string) (container.StatsResponseReader, error) {
	s := d.samples[id][min(d.calls[id], len(d.samples[id])-1)]
	d.calls[id]++
	b, _ := json.Marshal(s)
	return container.StatsResponseReader{Body: io.NopCloser(strings.NewReader(string(b)))}, nil
}

func (d *dockerStub) ContainerInspect(context.Context, string) (container.InspectResponse, error) {
	return container.InspectResponse{}, nil
}

func sample(total, system uint64, cpus uint32, mem, inactive uint64) container.StatsResponse {
	var s container.StatsResponse
	s.CPUStats.CPUUsage.TotalUsage, s.CPUStats.SystemUsage, s.CPUStats.OnlineCPUs = total, system, cpus
	s.MemoryStats.Usage, s.MemoryStats.Stats = mem, map[string]uint64{"total_inactive_file": inactive}
	return s
}

func TestContainers(t *testing.T) {
	dir := t.TempDir()
	quarantined := strings.Repeat("b", 64)
	if err := os.WriteFile(filepath.Join(dir, quarantined+".json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	web := strings.Repeat("a", 64)
	d := &dockerStub{calls: map[string]int{},
		list: []container.Summary{
			{ID: web, Names: []string{"/web"}, Image: "shop/web:1", State: "running", Labels: map[string]string{"riposte.protect": "true"}},
			{ID: quarantined, Names: []string{"/db"}, Image: "postgres:15", State: "paused"},
		},
		samples: map[string][]container.StatsResponse{web: {
			sample(1e9, 100e9, 2, 64<<20, 16<<20),
			// 0.5s of CPU over 2s of the machine's 2 CPUs: 50% of one core.
			sample(1.5e9, 102e9, 2, 64<<20, 16<<20),
		}}}
	f := &feed{docker: d, quarantineDir: dir, protect: guard.ParseLabel("riposte.protect=true"), cpu: map[string]cpuSample{}}
	first, err := f.containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].Name != "db" || !first[0].Quarantined || first[0].State != "paused" || first[0].Protected {
		t.Errorf("db = %+v", first[0])
	}
	if w := first[1]; w.Name != "web" || !w.Protected || w.Quarantined || w.CPUPercent != 0 || w.MemoryBytes != 48<<20 {
		t.Errorf("web at the first sample = %+v (no CPU yet: it needs two; memory less the page cache)", w)
	}
	second, err := f.containers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if w := second[1]; w.CPUPercent != 50 {
		t.Errorf("web's CPU = %v%%, want 50", w.CPUPercent)
	}
	if d.calls[quarantined] != 0 {
		t.Errorf("stats asked of a paused container %d times", d.calls[quarantined])
	}
}
