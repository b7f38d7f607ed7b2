package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/slack-go/slack"

	"github.com/riposte-sec/riposte/internal/actions"
)

// InteractionsHandler serves POST /v1/slack/interactions: it verifies the
// signature (v0 HMAC, five-minute window, no replay: else 401), parses the
// button press (else 400, or 200 for payloads that are not riposte's),
// answers 200 at once and does the work in the background: authorisation,
// Dispatcher, then the message update.
func (s *Slack) InteractionsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readVerified(w, r)
		if !ok {
			return
		}
		in, err := ParseInteraction(body)
		if errors.Is(err, ErrIgnored) {
			w.WriteHeader(http.StatusOK)
			return
		}
		if err != nil {
			s.log.WarnContext(r.Context(), "slack interaction refused", "err", err)
			http.Error(w, "bad interaction payload", http.StatusBadRequest)
			return
		}
		in.via = "button"
		if !s.spawn(func(ctx context.Context) { s.handleInteraction(ctx, in) }) {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// CommandsHandler serves POST /v1/slack/commands (`/riposte …`), verified
// like InteractionsHandler. Help and usage errors are answered in the HTTP
// response; everything else in the background through response_url.
func (s *Slack) CommandsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := s.readVerified(w, r)
		if !ok {
			return
		}
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		cmd, err := ParseSlashCommand(slashFromForm(vals))
		if err != nil {
			writeEphemeral(w, usage(err))
			return
		}
		if cmd.Verb == "help" {
			writeEphemeral(w, helpText)
			return
		}
		cmd.via = "command"
		if !s.spawn(func(ctx context.Context) { s.handleCommand(ctx, cmd) }) {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// readVerified reads the body (bounded) and verifies Slack's signature.
func (s *Slack) readVerified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayloadLen+1))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return nil, false
	}
	if len(body) > maxPayloadLen {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if err := s.verify(r.Context(), r.Header, body); err != nil {
		s.log.WarnContext(r.Context(), "slack request refused", "path", r.URL.Path, "reason", err.Error(), "remote", r.RemoteAddr)
		http.Error(w, "invalid slack signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

func writeEphemeral(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "application/json")
	b, _ := json.Marshal(map[string]string{"response_type": slack.ResponseTypeEphemeral, "text": text})
	_, _ = w.Write(b)
}

// handleInteraction does what a verified button press asks.
func (s *Slack) handleInteraction(ctx context.Context, in Interaction) {
	log := s.log.With("user", in.User.ID, "action", in.Action, "incident", in.Incident)
	approvers := s.cfg.Approvers
	if in.Kind == KindApproval && len(in.Approvers) > 0 {
		approvers = in.Approvers
	}
	if in.Restricted && !s.permit(ctx, approvers, Denial{Actor: in.User, Action: in.Action, Incident: in.Incident, Container: in.Container, ApprovalID: in.ApprovalID}, in.ResponseURL) {
		return
	}
	switch in.Kind {
	case KindApproval:
		err := s.dispatch.Approve(ctx, in.ApprovalID, in.User, in.Approve)
		if err != nil {
			log.WarnContext(ctx, "slack approval not recorded", "approval", in.ApprovalID, "err", err)
			s.respond(ctx, in.ResponseURL, slack.ResponseTypeEphemeral, "Your decision was not recorded: "+escape(s.redact.String(err.Error())))
			return
		}
		verb, status := "Approved", StatusApproved
		if !in.Approve {
			verb, status = "Denied", StatusRejected
		}
		who := in.User.Name
		if who == "" {
			who = in.User.ID
		}
		text := fmt.Sprintf("%s by %s at %s: %s (approval %s)", verb, who, s.now().UTC().Format("15:04 UTC"),
			strings.Join(in.Held, ", "), in.ApprovalID)
		if in.ChannelID != "" && in.MessageTS != "" {
			if err := s.CloseApproval(ctx, ApprovalMessage{Channel: in.ChannelID, TS: in.MessageTS}, text); err != nil {
				log.WarnContext(ctx, "slack approval message not updated", "err", err)
			}
		}
		if in.Incident != "" {
			step := actions.Step{Action: ActionApproval, Status: status, Note: strings.Join(in.Held, ", "), Actor: in.User.String(), Time: s.now().UTC()}
			if err := s.Update(ctx, in.Incident, step); err != nil && !errors.Is(err, ErrNoMessage) {
				log.WarnContext(ctx, "slack incident message not updated", "err", err)
			}
		}
	case KindButton:
		step := s.act(ctx, Command{Action: in.Action, Incident: in.Incident, Container: in.Container, Actor: in.User, Via: in.via})
		err := s.Update(ctx, in.Incident, step)
		switch {
		case errors.Is(err, ErrNoMessage):
			// The message is not ours to re-render (store lost, other
			// instance): say it in the channel through response_url.
			s.respond(ctx, in.ResponseURL, slack.ResponseTypeInChannel, stepLine(step))
		case err != nil:
			log.WarnContext(ctx, "slack incident message not updated", "err", err)
			s.respond(ctx, in.ResponseURL, slack.ResponseTypeInChannel, stepLine(step))
		}
	}
}

// handleCommand does what a verified slash command asks.
func (s *Slack) handleCommand(ctx context.Context, cmd SlashCommand) {
	if cmd.Verb == "status" {
		text, err := s.dispatch.Status(ctx)
		if err != nil {
			text = "riposte status is not available: " + escape(s.redact.String(err.Error()))
		}
		s.respond(ctx, cmd.ResponseURL, slack.ResponseTypeEphemeral, text)
		return
	}
	b, _ := buttonByID(cmd.Verb)
	if b.restricted && !s.permit(ctx, s.cfg.Approvers, Denial{Actor: cmd.User, Action: b.action, Container: cmd.Container}, cmd.ResponseURL) {
		return
	}
	step := s.act(ctx, Command{Action: b.action, Container: cmd.Container, Actor: cmd.User, Via: cmd.via})
	s.respond(ctx, cmd.ResponseURL, slack.ResponseTypeInChannel, stepLine(step)+" · container "+code(cmd.Container))
}

// act runs cmd through the Dispatcher and describes the outcome as a step.
func (s *Slack) act(ctx context.Context, cmd Command) actions.Step {
	res, err := s.dispatch.Act(ctx, cmd)
	step := actions.Step{Action: cmd.Action, Status: StatusSucceeded, Note: res.Note, Actor: cmd.Actor.String(), Time: s.now().UTC()}
	if err != nil {
		step.Status, step.Note = StatusFailed, s.redact.String(err.Error())
		s.log.WarnContext(ctx, "slack-requested action failed", "user", cmd.Actor.ID, "action", cmd.Action, "err", step.Note)
	}
	return step
}

// permit reports whether d.Actor is one of approvers; when not, the denial
// is recorded and the user told why.
func (s *Slack) permit(ctx context.Context, approvers []string, d Denial, responseURL string) bool {
	ok, err := s.authorized(ctx, d.Actor.ID, approvers)
	if ok {
		return true
	}
	d.Reason = "not an approver"
	if err != nil {
		d.Reason = "could not check approver groups: " + s.redact.String(err.Error())
	}
	s.deny(ctx, d, responseURL)
	return false
}

// deny tells the engine (journal) and the user.
func (s *Slack) deny(ctx context.Context, d Denial, responseURL string) {
	s.log.WarnContext(ctx, "slack request denied", "user", d.Actor.ID, "action", d.Action, "incident", d.Incident, "reason", d.Reason)
	if err := s.dispatch.Denied(ctx, d); err != nil {
		s.log.ErrorContext(ctx, "slack denial not recorded", "err", err)
	}
	what := d.Action
	if d.Action == ActionApproval {
		what = "decide on this approval"
	}
	s.respond(ctx, responseURL, slack.ResponseTypeEphemeral,
		fmt.Sprintf("🚫 You are not allowed to %s from Slack: only riposte approvers may. This attempt was recorded.", escape(what)))
}

// respond posts to a response_url. Only Slack's own hosts (or the
// configured API host, in tests) receive it.
func (s *Slack) respond(ctx context.Context, responseURL, responseType, text string) {
	if responseURL == "" || s.api == nil {
		return
	}
	if !s.allowedResponseURL(responseURL) {
		s.log.WarnContext(ctx, "slack response_url on an unexpected host; not answering")
		return
	}
	_, _, err := s.api.PostMessageContext(ctx, "",
		slack.MsgOptionResponseURL(responseURL, responseType),
		slack.MsgOptionText(text, false))
	if err != nil {
		s.log.WarnContext(ctx, "slack response_url post failed", "err", s.redact.Error(s.classify("post to response_url", err)))
	}
}

func (s *Slack) allowedResponseURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" && (u.Host == "hooks.slack.com" || u.Host == "hooks.slack-gov.com") {
		return true
	}
	api, err := url.Parse(s.apiURL)
	return err == nil && api.Host != "" && u.Scheme == api.Scheme && strings.EqualFold(u.Host, api.Host)
}
