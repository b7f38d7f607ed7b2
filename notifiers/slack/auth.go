package slack

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// authorized reports whether user is one of approvers, directly or through
// a user group. A lookup failure with no match denies (fail closed) and is
// returned so that the denial can say why.
func (s *Slack) authorized(ctx context.Context, user string, approvers []string) (bool, error) {
	if slices.Contains(approvers, user) {
		return true, nil
	}
	var errs []error
	for _, a := range approvers {
		if userIDPattern.MatchString(a) {
			continue
		}
		ok, err := s.groups.member(ctx, a, user)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

// groupCache caches user-group membership (usergroups.users.list) and
// handle → id resolution (usergroups.list) for ttl.
type groupCache struct {
	api *slack.Client
	ttl time.Duration
	now func() time.Time

	mu        sync.Mutex
	members   map[string]cachedMembers
	handles   map[string]string
	handlesAt time.Time
}

type cachedMembers struct {
	users []string
	at    time.Time
}

// member reports whether user belongs to group (an id S… or a handle @x).
func (g *groupCache) member(ctx context.Context, group, user string) (bool, error) {
	id, err := g.resolve(ctx, group)
	if err != nil {
		return false, err
	}
	g.mu.Lock()
	c, ok := g.members[id]
	g.mu.Unlock()
	if !ok || g.now().Sub(c.at) > g.ttl {
		if g.api == nil {
			return false, errors.New("look up slack user group: no bot token")
		}
		users, err := g.api.GetUserGroupMembersContext(ctx, id)
		if err != nil {
			return false, fmt.Errorf("look up members of slack user group %s: %w", id, err)
		}
		c = cachedMembers{users: users, at: g.now()}
		g.mu.Lock()
		if g.members == nil {
			g.members = make(map[string]cachedMembers)
		}
		g.members[id] = c
		g.mu.Unlock()
	}
	return slices.Contains(c.users, user), nil
}

// resolve returns the id of a user group given as an id or a handle.
func (g *groupCache) resolve(ctx context.Context, group string) (string, error) {
	if groupIDPattern.MatchString(group) {
		return group, nil
	}
	handle, ok := strings.CutPrefix(group, "@")
	if !ok {
		return "", fmt.Errorf("approver %q is not a user group", group)
	}
	g.mu.Lock()
	id, ok := g.handles[handle]
	fresh := g.now().Sub(g.handlesAt) <= g.ttl
	g.mu.Unlock()
	if ok && fresh {
		return id, nil
	}
	if g.api == nil {
		return "", errors.New("look up slack user groups: no bot token")
	}
	groups, err := g.api.GetUserGroupsContext(ctx)
	if err != nil {
		return "", fmt.Errorf("look up slack user groups: %w", err)
	}
	m := make(map[string]string, len(groups))
	for _, ug := range groups {
		m[ug.Handle] = ug.ID
	}
	g.mu.Lock()
	g.handles, g.handlesAt = m, g.now()
	g.mu.Unlock()
	id, ok = m[handle]
	if !ok {
		return "", fmt.Errorf("no slack user group with handle @%s", handle)
	}
	return id, nil
}

// Signature verification -------------------------------------------------------

// signatureWindow is Slack's: a request more than five minutes from our
// clock is refused (slack.NewSecretsVerifier enforces it), and a signature
// seen within the window is a replay.
const signatureWindow = 5 * time.Minute

// replayCache remembers the signatures of verified requests for the window.
type replayCache struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[[32]byte]time.Time
}

const maxReplayEntries = 100_000

// first records sig and reports whether it had not been seen in the window.
func (r *replayCache) first(sig string) bool {
	key := sha256.Sum256([]byte(sig))
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = make(map[[32]byte]time.Time)
	}
	if at, ok := r.seen[key]; ok && now.Sub(at) <= 2*signatureWindow {
		return false
	}
	if len(r.seen) >= maxReplayEntries {
		for k, at := range r.seen {
			if now.Sub(at) > 2*signatureWindow {
				delete(r.seen, k)
			}
		}
		if len(r.seen) >= maxReplayEntries {
			return false
		}
	}
	r.seen[key] = now
	return true
}

// verify checks Slack's v0 signature of body, the five-minute window and
// replays. The error says which check failed, never with the secret.
func (s *Slack) verify(h http.Header, body []byte) error {
	if s.signing == "" {
		return errors.New("no signing secret configured")
	}
	sv, err := slack.NewSecretsVerifier(h, s.signing)
	if err != nil {
		switch {
		case errors.Is(err, slack.ErrMissingHeaders):
			return errors.New("unsigned request")
		case errors.Is(err, slack.ErrExpiredTimestamp):
			return errors.New("timestamp outside the five-minute window")
		}
		return errors.New("malformed signature headers")
	}
	if _, err := sv.Write(body); err != nil {
		return fmt.Errorf("hash body: %w", err)
	}
	if err := sv.Ensure(); err != nil {
		return errors.New("bad signature")
	}
	if !s.replays.first(h.Get("X-Slack-Signature")) {
		return errors.New("replayed request")
	}
	return nil
}
