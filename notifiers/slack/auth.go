package slack

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
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
// clock is refused, and a request seen within the window is a replay.
const signatureWindow = 5 * time.Minute

// Replays remembers the signed requests already served, so that a captured
// request sent again is refused. The store implements it durably (a
// restart does not forget); nil Deps.Replays keeps them in memory.
type Replays interface {
	// FirstUse records key in ns until expires and reports whether it was
	// not recorded already (or had expired). Concurrent calls with one
	// key: exactly one is first.
	FirstUse(ctx context.Context, ns, key string, expires time.Time) (bool, error)
}

// replayNS is the namespace of Slack's request keys in Replays.
const replayNS = "slack.request"

// replayKey is the canonical request: the signed timestamp and the SHA-256
// of the body. Everything the signature covers, and nothing an attacker can
// vary without the secret (the signature's spelling, other headers).
func replayKey(ts int64, body []byte) string {
	sum := sha256.Sum256(body)
	return strconv.FormatInt(ts, 10) + ":" + hex.EncodeToString(sum[:])
}

// memoryReplays is Replays in memory, bounded: when full of live keys it
// refuses (fails closed) rather than forget one.
type memoryReplays struct {
	now  func() time.Time
	mu   sync.Mutex
	seen map[string]time.Time // key → expiry
}

const maxReplayEntries = 100_000

func (m *memoryReplays) FirstUse(_ context.Context, ns, key string, expires time.Time) (bool, error) {
	k := ns + "\x00" + key
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.seen == nil {
		m.seen = make(map[string]time.Time)
	}
	if exp, ok := m.seen[k]; ok && now.Before(exp) {
		return false, nil
	}
	if len(m.seen) >= maxReplayEntries {
		for k, exp := range m.seen {
			if !now.Before(exp) {
				delete(m.seen, k)
			}
		}
		if len(m.seen) >= maxReplayEntries {
			return false, errors.New("too many slack requests in the replay window")
		}
	}
	m.seen[k] = expires
	return true, nil
}

// verify checks Slack's v0 signature of body, the five-minute window and
// replays. The error says which check failed, never with the secret.
func (s *Slack) verify(ctx context.Context, h http.Header, body []byte) error {
	if s.signing == "" {
		return errors.New("no signing secret configured")
	}
	sig, tsText := h.Get("X-Slack-Signature"), h.Get("X-Slack-Request-Timestamp")
	if sig == "" || tsText == "" {
		return errors.New("unsigned request")
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil || ts <= 0 {
		return errors.New("malformed X-Slack-Request-Timestamp: want unix seconds")
	}
	sent := time.Unix(ts, 0)
	if d := s.now().Sub(sent); d > signatureWindow || d < -signatureWindow {
		return errors.New("timestamp outside the five-minute window")
	}
	hexSig, ok := strings.CutPrefix(sig, "v0=")
	if !ok {
		return errors.New("malformed X-Slack-Signature: want v0=<hex>")
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || len(got) != sha256.Size {
		return errors.New("malformed X-Slack-Signature: want v0=<64 hex digits>")
	}
	mac := hmac.New(sha256.New, []byte(s.signing))
	mac.Write([]byte("v0:" + tsText + ":"))
	mac.Write(body)
	// Compare the decoded bytes in constant time: the spelling of the hex
	// (upper or lower case) is not part of what was signed.
	if !hmac.Equal(mac.Sum(nil), got) {
		return errors.New("bad signature")
	}
	// Keep the key until the request can no longer pass the window check,
	// with a window's margin for a clock that steps back.
	expires := sent.Add(2 * signatureWindow)
	first, err := s.replays.FirstUse(ctx, replayNS, replayKey(ts, body), expires)
	if err != nil {
		s.log.ErrorContext(ctx, "slack replay check failed; refusing the request", "err", err)
		return errors.New("replay check unavailable")
	}
	if !first {
		return errors.New("replayed request")
	}
	return nil
}
