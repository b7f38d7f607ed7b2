package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
)

// Scope is what a credential may do.
type Scope string

// The scopes. Operator includes read-only; intake is on its own, so that
// the token every Falco sender holds can post alerts and nothing else.
const (
	// ScopeIntake posts alerts (POST /v1/alerts, POST /).
	ScopeIntake Scope = "intake"
	// ScopeOperator runs actions by hand (POST /v1/act) and reads what
	// read-only reads.
	ScopeOperator Scope = "operator"
	// ScopeReadOnly reads: /metrics (when protected), GET /v1/journal/head.
	ScopeReadOnly Scope = "read-only"
	// ScopeAgent is a node agent's: it posts its node's alerts (what
	// intake may) and takes and answers the actions addressed to its
	// node, which an intake token (every Falco sender holds one) may not.
	ScopeAgent Scope = "agent"
)

// ParseScope checks a scope name from the config.
func ParseScope(s string) (Scope, error) {
	switch sc := Scope(s); sc {
	case ScopeIntake, ScopeOperator, ScopeReadOnly, ScopeAgent:
		return sc, nil
	}
	return "", fmt.Errorf("want intake, operator, read-only or agent, got %q", s)
}

// allows reports whether a holder of have may use what needs want.
func (have Scope) allows(want Scope) bool {
	return have == want || (have == ScopeOperator && want == ScopeReadOnly) || (have == ScopeAgent && want == ScopeIntake)
}

// Credential is one named bearer token.
type Credential struct {
	// Name identifies the holder in the journal ("falco-prod", "jane").
	Name  string
	Scope Scope
	Token string
	// Node binds a credential of scope agent to the one node whose agent
	// holds it: it posts that node's alerts and takes and answers that
	// node's actions only. Required for scope agent, refused for others.
	Node string
}

// MinTokenLength is the shortest token accepted.
const MinTokenLength = 16

var credentialName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// CheckCredentials validates a set: names fit for the journal and unique,
// known scopes, tokens long enough and not shared between two names (a
// shared token would make the identity ambiguous). Errors name the
// credential, never its token.
func CheckCredentials(creds []Credential) error {
	var errs []error
	names := map[string]bool{}
	for i, c := range creds {
		if !credentialName.MatchString(c.Name) {
			errs = append(errs, fmt.Errorf("credential %d: name %q: want 1 to 64 of letters, digits, '.', '_', '@', '-'", i+1, clip(c.Name, maxEcho)))
			continue
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("credential %s: name used twice", c.Name))
		}
		names[c.Name] = true
		if _, err := ParseScope(string(c.Scope)); err != nil {
			errs = append(errs, fmt.Errorf("credential %s: scope: %w", c.Name, err))
		}
		switch {
		case c.Scope == ScopeAgent && c.Node == "":
			errs = append(errs, fmt.Errorf("credential %s: scope agent needs node (the node whose agent holds it)", c.Name))
		case c.Scope != ScopeAgent && c.Node != "":
			errs = append(errs, fmt.Errorf("credential %s: node is for scope agent only, not %s", c.Name, c.Scope))
		case c.Node != "":
			if err := CheckNodeName(c.Node); err != nil {
				errs = append(errs, fmt.Errorf("credential %s: %w", c.Name, err))
			}
		}
		if len(c.Token) < MinTokenLength {
			errs = append(errs, fmt.Errorf("credential %s: token shorter than %d characters", c.Name, MinTokenLength))
		}
		for _, o := range creds[:i] {
			if o.Token == c.Token && o.Name != c.Name {
				errs = append(errs, fmt.Errorf("credential %s: same token as credential %s", c.Name, o.Name))
			}
		}
	}
	return errors.Join(errs...)
}

// Keyring holds the credentials in force. Set swaps the whole set at once
// (on SIGHUP), so a request sees the old set or the new one, never a mix.
// Safe for concurrent use.
type Keyring struct {
	cur   atomic.Pointer[[]Credential]
	users atomic.Pointer[[]string] // OS users who may act through the socket
}

// NewKeyring checks creds and holds them.
func NewKeyring(creds []Credential) (*Keyring, error) {
	k := &Keyring{}
	if err := k.Set(creds); err != nil {
		return nil, err
	}
	return k, nil
}

// Set replaces the credentials; on error the previous set stays.
func (k *Keyring) Set(creds []Credential) error {
	if err := CheckCredentials(creds); err != nil {
		return fmt.Errorf("set credentials: %w", err)
	}
	c := slices.Clone(creds)
	k.cur.Store(&c)
	return nil
}

// SetSocketUsers replaces the OS users, besides root and the server's own
// user, who may act through the local socket (auth.socket_users).
func (k *Keyring) SetSocketUsers(names []string) {
	c := slices.Clone(names)
	k.users.Store(&c)
}

// SocketUser reports whether name is one of the socket users.
func (k *Keyring) SocketUser(name string) bool {
	u := k.users.Load()
	return u != nil && slices.Contains(*u, name)
}

// Has reports whether some credential has exactly scope s.
func (k *Keyring) Has(s Scope) bool {
	for _, c := range *k.cur.Load() {
		if c.Scope == s {
			return true
		}
	}
	return false
}

// Authenticate finds the credential whose token is tok. Every token is
// compared, in constant time, whatever matches.
func (k *Keyring) Authenticate(tok string) (Identity, bool) {
	var found Credential
	ok := 0
	for _, c := range *k.cur.Load() {
		if subtle.ConstantTimeCompare([]byte(tok), []byte(c.Token)) == 1 {
			found, ok = c, 1
		}
	}
	if ok == 0 {
		return Identity{}, false
	}
	return Identity{Name: found.Name, Scope: found.Scope, Via: ViaToken, Node: found.Node}, true
}

// CheckNodeName checks a node name an agent credential is bound to: what
// a host name may be, up to 253 printable characters without spaces.
func CheckNodeName(node string) error {
	if node == "" || len(node) > 253 {
		return fmt.Errorf("node %q: want 1 to 253 characters", clip(node, maxEcho))
	}
	for _, r := range node {
		if r <= ' ' || r == 0x7f || r == '/' {
			return fmt.Errorf("node %q: control character, space or '/'", clip(node, maxEcho))
		}
	}
	return nil
}

// How an identity was established.
const (
	ViaToken  = "token"
	ViaSocket = "socket"
	ViaHMAC   = "hmac"
)

// Identity is who made a request, as established by the server: a token's
// name, or the OS user at the other end of the local socket. Handlers
// journal Actor(), never a name the client wrote in its request.
type Identity struct {
	Name  string
	Scope Scope
	Via   string
	// UID is the peer's user id (Via socket).
	UID int
	// Node is the node an agent credential is bound to (scope agent).
	Node string
}

// ErrOtherNode is what SpeaksFor's refusals wrap.
var ErrOtherNode = errors.New("an agent credential speaks for its own node only")

// SpeaksFor checks that id may speak for node: an agent credential for
// the node it is bound to only, other identities (which the agent
// endpoints refuse by scope anyway) for any. The error names the
// credential and both nodes; answer it 403.
func (id Identity) SpeaksFor(node string) error {
	if id.Scope != ScopeAgent || node == id.Node {
		return nil
	}
	return fmt.Errorf("credential %s is bound to node %s, not %q: %w", id.Name, id.Node, clip(node, maxEcho), ErrOtherNode)
}

// Actor is the identity as the journal records it: "token:falco-prod",
// "cli:jane via socket".
func (id Identity) Actor() string {
	switch id.Via {
	case ViaSocket:
		return "cli:" + id.Name + " via socket"
	case ViaHMAC:
		return "hmac"
	}
	return "token:" + id.Name
}

type identityKey struct{}

// peerKey holds a socket peer's credentials (set per connection).
type peerKey struct{}

// WithIdentity returns ctx carrying id (tests of handlers behind Require).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity Require established for the request.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// peer is what the kernel says about the process at the other end of a
// unix socket connection (SO_PEERCRED), and whether policy lets it in.
type peer struct {
	uid     int
	pid     int32
	name    string
	allowed bool
}

// socketPeer reads the peer credentials of c, a unix socket connection.
func (s *Server) socketPeer(c net.Conn) (peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{}, fmt.Errorf("read peer credentials: %T is not a unix socket", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{}, fmt.Errorf("read peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return peer{}, fmt.Errorf("read peer credentials: %w", err)
	}
	if serr != nil {
		return peer{}, fmt.Errorf("read peer credentials: %w", serr)
	}
	p := peer{uid: int(cred.Uid), pid: cred.Pid, name: "uid " + strconv.Itoa(int(cred.Uid))}
	if u, err := user.LookupId(strconv.Itoa(p.uid)); err == nil && u.Username != "" {
		p.name = u.Username
	}
	p.allowed = s.peerAllowed(p.uid, p.name)
	return p, nil
}

// peerAllowed: root and the server's own user hold the data directory
// anyway; others must be named in the config (read again on SIGHUP).
func (s *Server) peerAllowed(uid int, name string) bool {
	return uid == 0 || uid == os.Getuid() || s.keys.SocketUser(name)
}

// Require wraps h so that only requests whose identity has scope reach it,
// with that identity in their context: a bearer token from the keyring, or
// an allowed peer on the local socket. No credential: 401; a credential of
// another scope or a peer not allowed: 403.
func (s *Server) Require(scope Scope, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, status, msg := s.identify(r)
		if status == 0 && !id.Scope.allows(scope) {
			status, msg = http.StatusForbidden, fmt.Sprintf("credential %s has scope %s: this needs %s", id.Name, id.Scope, scope)
		}
		if status != 0 {
			s.deps.Metrics.AuthRefused.WithLabelValues(string(scope), strconv.Itoa(status)).Inc()
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="riposte"`)
			}
			writeJSON(w, status, map[string]string{"error": msg})
			return
		}
		h.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// identify establishes who sent r; status 0 means found.
func (s *Server) identify(r *http.Request) (Identity, int, string) {
	if p, ok := r.Context().Value(peerKey{}).(peer); ok {
		if !p.allowed {
			return Identity{}, http.StatusForbidden, fmt.Sprintf("%s may not use this socket (root, the server's user and auth.socket_users may)", p.name)
		}
		return Identity{Name: p.name, Scope: ScopeOperator, Via: ViaSocket, UID: p.uid}, 0, ""
	}
	tok, ok := bearerToken(r)
	if !ok {
		return Identity{}, http.StatusUnauthorized, "missing credentials: send Authorization: Bearer <token>"
	}
	id, ok := s.keys.Authenticate(tok)
	if !ok {
		return Identity{}, http.StatusUnauthorized, "invalid bearer token"
	}
	return id, 0, ""
}
