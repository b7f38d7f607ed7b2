package slackpeertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/slack-go/slack"
)

// ValidateBlocks checks a Block Kit array against the limits Slack
// documents for the block and element types riposte uses (Slack answers
// invalid_blocks when one is broken): at most 50 blocks; header plain_text
// ≤150 characters; section text ≤3000, ≤10 fields of ≤2000, text or fields
// required; context ≤10 elements; actions ≤25 elements; buttons with
// plain_text ≤75, action_id ≤255 and unique in the message, value ≤2000,
// style primary or danger; confirm dialogs with title ≤100, text ≤300,
// confirm and deny ≤30; block_id ≤255.
func ValidateBlocks(raw string) error {
	var typed slack.Blocks
	if err := json.Unmarshal([]byte(raw), &typed); err != nil {
		return fmt.Errorf("blocks do not decode: %w", err)
	}
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return fmt.Errorf("blocks are not an array of objects: %w", err)
	}
	if len(blocks) > 50 {
		return fmt.Errorf("%d blocks, at most 50", len(blocks))
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		if err := checkBlock(b, ids); err != nil {
			return fmt.Errorf("block %d (%v): %w", i, b["type"], err)
		}
	}
	return nil
}

func checkBlock(b map[string]any, actionIDs map[string]bool) error {
	if id, _ := b["block_id"].(string); utf8.RuneCountInString(id) > 255 {
		return errors.New("block_id longer than 255")
	}
	switch b["type"] {
	case "header":
		return checkText(b["text"], "plain_text", 150, true)
	case "section":
		_, hasText := b["text"]
		fields, _ := b["fields"].([]any)
		if !hasText && len(fields) == 0 {
			return errors.New("section without text or fields")
		}
		if hasText {
			if err := checkText(b["text"], "", 3000, true); err != nil {
				return err
			}
		}
		if len(fields) > 10 {
			return fmt.Errorf("%d fields, at most 10", len(fields))
		}
		for _, f := range fields {
			if err := checkText(f, "", 2000, true); err != nil {
				return fmt.Errorf("field: %w", err)
			}
		}
	case "context":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 10 {
			return fmt.Errorf("%d context elements, want 1 to 10", len(els))
		}
		for _, e := range els {
			if err := checkText(e, "", 3000, true); err != nil {
				return err
			}
		}
	case "actions":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 25 {
			return fmt.Errorf("%d action elements, want 1 to 25", len(els))
		}
		for _, e := range els {
			m, _ := e.(map[string]any)
			if m["type"] != "button" {
				continue
			}
			if err := checkButton(m, actionIDs); err != nil {
				return err
			}
		}
	case "divider":
	default:
		return fmt.Errorf("block type %v not checked by this peer", b["type"])
	}
	return nil
}

func checkButton(m map[string]any, actionIDs map[string]bool) error {
	if err := checkText(m["text"], "plain_text", 75, true); err != nil {
		return fmt.Errorf("button text: %w", err)
	}
	id, _ := m["action_id"].(string)
	if id == "" || utf8.RuneCountInString(id) > 255 {
		return errors.New("button action_id missing or longer than 255")
	}
	if actionIDs[id] {
		return fmt.Errorf("action_id %q used twice", id)
	}
	actionIDs[id] = true
	if v, _ := m["value"].(string); utf8.RuneCountInString(v) > 2000 {
		return errors.New("button value longer than 2000")
	}
	if st, ok := m["style"]; ok && st != "primary" && st != "danger" {
		return fmt.Errorf("button style %v", st)
	}
	if c, ok := m["confirm"].(map[string]any); ok {
		for _, f := range []struct {
			key string
			typ string
			max int
		}{{"title", "plain_text", 100}, {"text", "", 300}, {"confirm", "plain_text", 30}, {"deny", "plain_text", 30}} {
			if err := checkText(c[f.key], f.typ, f.max, f.key != "deny"); err != nil {
				return fmt.Errorf("confirm %s: %w", f.key, err)
			}
		}
	}
	return nil
}

// checkText checks a text object: its type (typ, or plain_text or mrkdwn
// when ""), a non-empty text of at most max characters.
func checkText(v any, typ string, max int, required bool) error {
	if v == nil && !required {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return errors.New("missing text object")
	}
	t, _ := m["type"].(string)
	if typ != "" && t != typ {
		return fmt.Errorf("text type %q, want %q", t, typ)
	}
	if t != "plain_text" && t != "mrkdwn" {
		return fmt.Errorf("text type %q", t)
	}
	s, _ := m["text"].(string)
	if s == "" {
		return errors.New("empty text")
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("text of %d characters, at most %d", n, max)
	}
	return nil
}
