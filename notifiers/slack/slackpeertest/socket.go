package slackpeertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
)

// socketHub is the Socket Mode side of the peer: apps.connections.open
// hands out a WebSocket URL; on it the peer says hello, sends envelopes and
// reads the acknowledgements, and pings like Slack does.
type socketHub struct {
	p *Peer

	mu        sync.Mutex
	conns     []*socketConn
	tickets   map[string]bool
	acks      map[string]chan json.RawMessage
	seq       int
	connected chan struct{}
	closed    bool
}

type socketConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex
	done chan struct{}
}

func newSocketHub(p *Peer) *socketHub {
	return &socketHub{p: p, tickets: map[string]bool{}, acks: map[string]chan json.RawMessage{}, connected: make(chan struct{})}
}

func (p *Peer) appsConnectionsOpen(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_ = r.ParseForm()
	token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case token == "":
		_, _ = w.Write([]byte(`{"ok":false,"error":"not_authed"}`))
		return
	case token != p.AppToken:
		_, _ = w.Write([]byte(`{"ok":false,"error":"invalid_auth"}`))
		return
	}
	h := p.sockets
	h.mu.Lock()
	h.seq++
	ticket := "t" + strconv.Itoa(h.seq)
	h.tickets[ticket] = true
	h.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"ok": true, "url": "ws://" + p.srv.ServerAddr + "/socket?ticket=" + ticket})
	_, _ = w.Write(b)
}

func (h *socketHub) serve(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	h.mu.Lock()
	ok := h.tickets[ticket] && !h.closed
	delete(h.tickets, ticket)
	h.mu.Unlock()
	if !ok {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &socketConn{ws: ws, done: make(chan struct{})}
	hello := map[string]any{"type": "hello", "num_connections": 1,
		"debug_info":      map[string]any{"host": "riposte-slackpeertest", "approximate_connection_time": 3600},
		"connection_info": map[string]any{"app_id": "A0RIPOSTE"}}
	if err := c.write(hello); err != nil {
		ws.Close()
		return
	}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	if len(h.conns) == 1 {
		close(h.connected)
	}
	h.mu.Unlock()
	go c.ping()
	defer func() {
		close(c.done)
		ws.Close()
		h.mu.Lock()
		for i, x := range h.conns {
			if x == c {
				h.conns = append(h.conns[:i], h.conns[i+1:]...)
				break
			}
		}
		h.mu.Unlock()
	}()
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &ack) != nil || ack.EnvelopeID == "" {
			continue
		}
		h.mu.Lock()
		ch := h.acks[ack.EnvelopeID]
		delete(h.acks, ack.EnvelopeID)
		h.mu.Unlock()
		if ch != nil {
			ch <- ack.Payload
		}
	}
}

func (c *socketConn) write(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.WriteJSON(v)
}

// ping sends WebSocket pings as Slack does; the client counts them to detect
// a dead connection.
func (c *socketConn) ping() {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(time.Second)); err != nil {
				return
			}
		}
	}
}

func (h *socketHub) close() {
	h.mu.Lock()
	h.closed = true
	conns := append([]*socketConn(nil), h.conns...)
	h.mu.Unlock()
	for _, c := range conns {
		_ = c.ws.Close()
	}
}

// WaitSocket waits until a Socket Mode client is connected.
func (p *Peer) WaitSocket(ctx context.Context) error {
	select {
	case <-p.sockets.connected:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("no socket mode client connected: %w", ctx.Err())
	}
}

// SendInteractive delivers an interaction over Socket Mode and returns the
// payload of the client's acknowledgement.
func (p *Peer) SendInteractive(ctx context.Context, cb slack.InteractionCallback) (json.RawMessage, error) {
	payload, err := json.Marshal(&cb)
	if err != nil {
		return nil, err
	}
	return p.sockets.send(ctx, "interactive", payload)
}

// SendSlashCommand delivers a slash command over Socket Mode and returns the
// payload of the client's acknowledgement.
func (p *Peer) SendSlashCommand(ctx context.Context, sc slack.SlashCommand) (json.RawMessage, error) {
	payload, err := json.Marshal(sc)
	if err != nil {
		return nil, err
	}
	return p.sockets.send(ctx, "slash_commands", payload)
}

func (h *socketHub) send(ctx context.Context, typ string, payload json.RawMessage) (json.RawMessage, error) {
	h.mu.Lock()
	if len(h.conns) == 0 {
		h.mu.Unlock()
		return nil, errors.New("no socket mode client connected")
	}
	c := h.conns[len(h.conns)-1]
	h.seq++
	id := fmt.Sprintf("env-%d", h.seq)
	ch := make(chan json.RawMessage, 1)
	h.acks[id] = ch
	h.mu.Unlock()
	env := map[string]any{"envelope_id": id, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands", "retry_attempt": 0, "retry_reason": ""}
	if err := c.write(env); err != nil {
		return nil, err
	}
	select {
	case ack := <-ch:
		return ack, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("no ack for %s: %w", id, ctx.Err())
	}
}
