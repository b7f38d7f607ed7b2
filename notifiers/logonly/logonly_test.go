package logonly

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
)

func TestRunLogs(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)))
	res, err := l.Run(context.Background(), actions.Request{
		Action: "slack.notify", Incident: "inc-1", Params: actions.Params{"channel": "#ir", "text": "shell in web"},
		Alert: alert.Alert{Rule: "Terminal shell in container", Priority: alert.PriorityNotice,
			OutputFields: map[string]any{"container.name": "web", "container.id": "3f9a1c2b7d4e"}},
		Steps: []actions.Step{{Action: "container.snapshot", Status: "succeeded"}},
	})
	if err != nil || !strings.Contains(res.Note, "logged") {
		t.Fatalf("Run: %+v %v", res, err)
	}
	out := buf.String()
	for _, want := range []string{"action=slack.notify", "incident=inc-1", `channel=#ir`, `text="shell in web"`, "container=web", "already_done=[container.snapshot:succeeded]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
