package topfeed

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/riposte-sec/riposte/internal/console"
	"github.com/riposte-sec/riposte/internal/guard"
)

// maxLine bounds one update on the wire.
const maxLine = 8 << 20

// Handler serves the console stream: one JSON console.Update per line,
// until the request's context ends. The route authenticates.
type Handler struct {
	Events        Events // nil: the server runs no detector; containers and incidents only
	Docker        Docker
	Incidents     func(ctx context.Context) ([]console.Incident, error)
	QuarantineDir string
	Protect       guard.Label
	Interval      time.Duration
	Log           *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The server's write timeout is for requests; a stream lives on.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush()
	f := &feed{events: h.Events, docker: h.Docker, incidents: h.Incidents, quarantineDir: h.QuarantineDir, protect: h.Protect,
		interval: h.Interval, log: h.Log}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	enc := json.NewEncoder(w)
	_ = f.run(ctx, nil, nil, func(u console.Update) {
		if err := enc.Encode(u); err != nil {
			cancel() // the client went away
			return
		}
		if err := rc.Flush(); err != nil {
			cancel()
		}
	})
}

// Remote feeds the console from a running server's stream, reconnecting
// when it goes away.
type Remote struct {
	URL   string // http://host:port/v1/top/stream
	Token string
	// Client defaults to http.DefaultClient.
	Client *http.Client
}

// Run reads the stream until ctx ends. A refused token ends it (retrying
// would not help); anything else is shown and retried every 2s.
func (r *Remote) Run(ctx context.Context, send func(console.Update)) error {
	for {
		err := r.once(ctx, send)
		if ctx.Err() != nil {
			return nil
		}
		var perm permanent
		if errors.As(err, &perm) {
			return err
		}
		if err != nil {
			send(console.Update{Err: err.Error() + " (retrying)"})
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

type permanent struct{ error }

func (r *Remote) once(ctx context.Context, send func(console.Update)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return permanent{fmt.Errorf("read server stream: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("read server stream: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return permanent{fmt.Errorf("read server stream: %s: the token was refused", resp.Status)}
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("read server stream: %s", resp.Status)
	}
	send(console.Update{Connected: true}) // clears an earlier error
	return Decode(resp.Body, send)
}

// Decode reads a stream of updates, one JSON object per line, calling send
// for each, until EOF or a bad line.
func Decode(rd io.Reader, send func(console.Update)) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		if len(sc.Bytes()) == 0 {
			continue
		}
		u, err := DecodeLine(sc.Bytes())
		if err != nil {
			return fmt.Errorf("read server stream: line %d: %w", n, err)
		}
		send(u)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read server stream: line %d: %w", n+1, err)
	}
	return errors.New("read server stream: the server closed it")
}

// DecodeLine decodes one update strictly: unknown fields are refused.
func DecodeLine(b []byte) (console.Update, error) {
	var u console.Update
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&u); err != nil {
		return console.Update{}, fmt.Errorf("decode update: %w", err)
	}
	if dec.More() {
		return console.Update{}, errors.New("decode update: more than one JSON value on the line")
	}
	return u, nil
}
