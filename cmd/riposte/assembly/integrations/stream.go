package integrations

import (
	"context"

	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/notifiers/stream"
	"github.com/riposte-sec/riposte/notifiers/stream/outputs"
)

// streamer adapts the configured stream outputs to the engine.
type streamer struct{ set *outputs.Set }

func (s streamer) Kind() string { return outputs.MessageKind }

func (s streamer) AlertMessages(a *alert.Alert, incident string) ([]store.Message, error) {
	r, err := stream.FromAlert(*a, incident)
	if err != nil {
		return nil, err
	}
	return s.set.Messages(r)
}

func (s streamer) EntryMessages(e store.Entry) ([]store.Message, error) {
	incident, _ := e.Detail["incident"].(string)
	r, err := stream.FromEntry(e, nil, incident)
	if err != nil {
		return nil, err
	}
	return s.set.Messages(r)
}

func (s streamer) Deliver(ctx context.Context, m store.Message) (map[string]any, error) {
	return s.set.Deliver(ctx, m)
}

// Journal: program runs are journaled (exit status, stderr); syslog and
// file writes are not, or the journal would double.
func (s streamer) Journal(detail map[string]any) bool { return detail["output"] == "program" }
