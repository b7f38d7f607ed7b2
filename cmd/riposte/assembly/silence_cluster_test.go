package assembly

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/config"
	"github.com/riposte-sec/riposte/internal/silence"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/store/postgres"
)

// TestClusterSilenceSharedByReplicas: a silence of scope all created
// through one replica (its socket, as `riposte silence add` does) and
// approved by another person applies to the alerts the other replica
// processes; the rest still run their actions.
func TestClusterSilenceSharedByReplicas(t *testing.T) {
	ctx := context.Background()
	url := pg.Database(t)
	dir := t.TempDir()
	pbs := filepath.Join(dir, "playbooks.yaml")
	if err := os.WriteFile(pbs, []byte(crashPlaybook), 0o600); err != nil {
		t.Fatal(err)
	}
	var cs []*child
	for i := range 2 {
		c := startChild(t, filepath.Join(dir, fmt.Sprintf("replica-%d", i)), pbs, StoreEnv+"="+url)
		t.Cleanup(func() {
			if c.cmd.ProcessState == nil {
				c.cmd.Process.Kill()
				c.cmd.Wait()
			}
		})
		cs = append(cs, c)
	}
	resp, how, err := Silence(ctx, config.Config{Data: filepath.Join(dir, "replica-0")}, SilenceOp{Kind: SilenceAdd, Request: &silence.Request{
		Matcher: store.SilenceMatcher{Containers: []string{"c-quiet"}}, Scope: store.ScopeAll, Duration: "10m", Comment: "cluster"}})
	if err != nil || resp.Silence.State != store.SilenceStatePending {
		t.Fatalf("add through replica 0 (%s): %+v, %v\n%s", how, resp, err, logsOf(cs))
	}
	st, err := postgres.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := silence.Approve(ctx, st, resp.Silence.ID, "op:lead"); err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	for id, container := range map[string]string{"quiet-1": "c-quiet", "loud-1": "c-loud"} {
		if code, err := postAlert(client, cs[1].addr, id, container); err != nil || code != http.StatusAccepted {
			t.Fatalf("post %s to replica 1: %d %v", id, code, err)
		}
	}
	waitDrained(t, st, 20*time.Second, cs)
	counts := journalCounts(t, st)
	if counts[store.AlertSilenced]["quiet-1"] != 1 || counts[store.ActionSkipped]["quiet-1"] != 2 || counts[store.Note]["quiet-1"] != 0 {
		t.Errorf("silenced alert: %d alert.silenced, %d action.skipped, %d notes; want 1, 2, 0\n%s",
			counts[store.AlertSilenced]["quiet-1"], counts[store.ActionSkipped]["quiet-1"], counts[store.Note]["quiet-1"], logsOf(cs))
	}
	if counts[store.AlertSilenced]["loud-1"] != 0 || counts[store.Note]["loud-1"] != 2 {
		t.Errorf("other alert: %d alert.silenced, %d notes; want 0, 2", counts[store.AlertSilenced]["loud-1"], counts[store.Note]["loud-1"])
	}
	stopReplicas(t, cs)
}
