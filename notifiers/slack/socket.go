package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode receives interactions and slash commands over Socket Mode
// (a WebSocket riposte opens to Slack; no public URL needed) until ctx is
// cancelled. Each request is acknowledged at once and handled like its HTTP
// twin: same parsing, same authorisation, same Dispatcher. Slack
// authenticates the socket with the app-level token, so there is no
// per-request signature to check.
func (s *Slack) RunSocketMode(ctx context.Context) error {
	if !s.cfg.socketMode() || s.api == nil || s.appToken == "" {
		return errors.New("slack socket mode: not configured (socket_mode: true, a bot token and app_token_env or app_token_file)")
	}
	client := socketmode.New(s.api, socketmode.OptionLog(slogLogger{s.log}))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-runCtx.Done():
				return
			case evt, ok := <-client.Events:
				if !ok {
					return
				}
				s.socketEvent(runCtx, client, evt)
			}
		}
	}()
	err := client.RunContext(runCtx) // returns only on failure or cancellation
	cancel()
	<-done
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return s.redact.Error(fmt.Errorf("slack socket mode: %w", err))
}

// socketEvent handles one Socket Mode event.
func (s *Slack) socketEvent(ctx context.Context, client *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok || evt.Request == nil {
			return
		}
		s.ack(ctx, client, evt.Request, nil)
		in, err := interactionFrom(cb)
		if err != nil {
			if !errors.Is(err, ErrIgnored) {
				s.log.WarnContext(ctx, "slack socket interaction refused", "err", err)
			}
			return
		}
		in.via = "socket"
		s.spawn(func(ctx context.Context) { s.handleInteraction(ctx, in) })
	case socketmode.EventTypeSlashCommand:
		sc, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil {
			return
		}
		cmd, err := ParseSlashCommand(sc)
		if err != nil {
			s.ack(ctx, client, evt.Request, map[string]string{"response_type": slack.ResponseTypeEphemeral, "text": usage(err)})
			return
		}
		if cmd.Verb == "help" {
			s.ack(ctx, client, evt.Request, map[string]string{"response_type": slack.ResponseTypeEphemeral, "text": helpText})
			return
		}
		s.ack(ctx, client, evt.Request, nil)
		cmd.via = "socket"
		s.spawn(func(ctx context.Context) { s.handleCommand(ctx, cmd) })
	case socketmode.EventTypeInvalidAuth:
		s.log.ErrorContext(ctx, "slack socket mode: the app-level token was refused (invalid_auth)")
	case socketmode.EventTypeConnectionError:
		s.log.WarnContext(ctx, "slack socket mode: connection error; retrying")
	case socketmode.EventTypeConnected:
		s.log.InfoContext(ctx, "slack socket mode: connected")
	case socketmode.EventTypeEventsAPI:
		// riposte subscribes to no events; acknowledge so Slack does not retry.
		if evt.Request != nil {
			s.ack(ctx, client, evt.Request, nil)
		}
	}
}

func (s *Slack) ack(ctx context.Context, client *socketmode.Client, req *socketmode.Request, payload any) {
	if err := client.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
		s.log.WarnContext(ctx, "slack socket mode: ack failed", "envelope", req.EnvelopeID, "err", err)
	}
}

// slogLogger adapts slog to socketmode's logger (debug lines only).
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Output(_ int, msg string) error {
	s.l.Debug("slack socket mode", "msg", msg)
	return nil
}
