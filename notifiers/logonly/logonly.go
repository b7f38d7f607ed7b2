package logonly

import (
	"context"
	"log/slog"

	"github.com/riposte-sec/riposte/internal/actions"
)

// Logger writes each notification as one structured log line.
type Logger struct {
	log *slog.Logger
}

// New returns a log-only notifier; a nil logger discards.
func New(log *slog.Logger) *Logger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Logger{log: log}
}

// Run logs what the notifier would have sent.
func (l *Logger) Run(_ context.Context, req actions.Request) (actions.Result, error) {
	c := req.Alert.Container()
	attrs := []any{
		"action", req.Action, "incident", req.Incident, "rule", req.Alert.Rule, "priority", req.Alert.Priority.String(),
		"container", c.Name, "container_id", c.ID, "image", c.Image,
	}
	for _, k := range []string{"channel", "text", "summary", "severity", "subject", "to", "endpoint"} {
		if v, ok := req.Params[k]; ok {
			attrs = append(attrs, k, v)
		}
	}
	if len(req.Steps) > 0 {
		done := make([]string, 0, len(req.Steps))
		for _, s := range req.Steps {
			done = append(done, s.Action+":"+string(s.Status))
		}
		attrs = append(attrs, "already_done", done)
	}
	l.log.Info("notification (log only: no credentials configured)", attrs...)
	return actions.Result{Note: "logged (no " + req.Action + " credentials configured)"}, nil
}
