package slack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/riposte-sec/riposte/notifiers/internal/delivery"
)

// postJSON posts body to target (an incoming webhook URL). The URL is a
// credential: no error text carries it.
func (s *Slack) postJSON(ctx context.Context, op, target string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%s: encode: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("%s: invalid URL", op)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.http.Do(req)
	if err != nil {
		return delivery.Transport(op, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return delivery.FromStatus(op, resp, data, s.now())
	}
	return nil
}
