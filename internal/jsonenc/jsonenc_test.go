package jsonenc

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestAppendValueAsMarshal: every value encodes to json.Marshal's bytes,
// and what Marshal refuses is refused.
func TestAppendValueAsMarshal(t *testing.T) {
	tricky := []string{"", "plain text", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff\x00nul\x1fus",
		"ünïcödé ✓", "line\u2028sep\u2029par", "bad \xff\xfe utf-8", "\x7f del", "emoji 🙂"}
	for name, v := range map[string]any{
		"nil":       nil,
		"strings":   tricky,
		"list":      []any{tricky[3], 1, int64(-2), 2.5, nil, true, false, []string(nil), []any(nil)},
		"map":       map[string]any{tricky[4]: tricky[7], tricky[3]: tricky[6], "": map[string]any{"z": 1, "a": map[string]any(nil)}},
		"numbers":   map[string]any{"f": 0.1, "big": 1e21, "neg": -3.25, "u8": uint8(7), "i32": int32(-9), "num": json.Number("12.50"), "max": math.MaxInt64, "min": int64(math.MinInt64)},
		"marshaler": map[string]any{"time": time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC), "raw": json.RawMessage(`{"k": [1, 2]}`), "struct": struct{ A string }{"<"}},
		"many keys": map[string]any{"k01": 1, "k02": 2, "k03": 3, "k04": 4, "k05": 5, "k06": 6, "k07": 7, "k08": 8, "k09": 9, "k10": 10, "k11": 11, "k12": 12, "k13": 13, "k14": 14, "k15": 15, "k16": 16, "k17": 17},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := AppendValue([]byte("prefix "), v)
			if !ok || string(got) != "prefix "+string(want) {
				t.Fatalf("AppendValue:\n got %s (%v)\nwant prefix %s", got, ok, want)
			}
		})
	}
	for name, v := range map[string]any{
		"nan":     math.NaN(),
		"channel": map[string]any{"c": make(chan int)},
		"nested":  []any{map[string]any{"x": []any{1, math.Inf(1)}}},
	} {
		t.Run("refused/"+name, func(t *testing.T) {
			if _, err := json.Marshal(v); err == nil {
				t.Fatal("json.Marshal took it")
			}
			if got, ok := AppendValue(nil, v); ok {
				t.Fatalf("AppendValue took it: %s", got)
			}
		})
	}
}

// FuzzAppendString: any text, as a string, a key or in a list, encodes
// as json.Marshal encodes it.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "<&>", "\u2028", "\xff", "\"\\", "\x00\x1f\x7f", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := map[string]any{s: s, "list": []any{s}, "strings": []string{s, s}}
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := AppendValue(nil, v)
		if !ok || string(got) != string(want) {
			t.Fatalf("AppendValue:\n got %s (%v)\nwant %s", got, ok, want)
		}
	})
}
