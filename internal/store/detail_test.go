package store

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// TestMarshalDetailAsJSON: a detail encodes to the bytes json.Marshal
// gives, whatever its values: the journal's hashes were computed over
// those bytes, and a reader re-encoding a detail must get them again.
func TestMarshalDetailAsJSON(t *testing.T) {
	tricky := []string{"", "plain text", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bbs\fff\x00nul\x1fus",
		"ünïcödé ✓", "line\u2028sep\u2029par", "bad \xff\xfe utf-8", "\x7f del", "emoji 🙂"}
	steps := []PlanStep{
		{Index: 0, Action: "slack.notify", With: map[string]any{"channel": "#security-oncall", "text": "Terminal shell <in> & container"}, Decision: "skipped_dry_run"},
		{Index: 1, Action: "container.snapshot", With: map[string]any{"export": false, "logs": 200}, Decision: "skipped_dry_run"},
		{Index: 2, Action: "container.pause", With: map[string]any{}, Decision: "skipped", Reason: "silenced", Silence: "sil-1"},
		{Index: 3, Action: "journal.note", Decision: "failed", Reason: "template: \"x\" undefined"},
	}
	for name, d := range map[string]map[string]any{
		"nil":       nil,
		"empty":     {},
		"dry plan":  {"incident": "inc-1", "order": 30, "actions": 4, "dry_run": true, "retry": false, PlanDetail: steps},
		"settled":   {"incident": TheIncident, "order": int64(-7), "plan": []PlanStep{}, "nil plan": []PlanStep(nil)},
		"tricky":    {"a": tricky, "b": []any{tricky[3], 1, 2.5, nil, true}, tricky[4]: tricky[7], tricky[3]: tricky[6]},
		"numbers":   {"f": 0.1, "big": 1e21, "neg": -3.25, "u8": uint8(7), "i32": int32(-9), "num": json.Number("12.50"), "nan-free": math.MaxInt64},
		"nested":    {"with": map[string]any{"z": map[string]any{"y": []string{"x", "<"}, "n": nil}, "a": []any(nil)}, "s": []string(nil), "m": map[string]any(nil)},
		"marshaler": {"time": time.Date(2025, 3, 1, 12, 0, 0, 5, time.UTC), "raw": json.RawMessage(`{"k": [1, 2]}`), "ptr": &steps[0], "struct": steps[1]},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(d)
			if d == nil {
				want, err = []byte("{}"), nil
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := marshalDetail(d)
			if err != nil || string(got) != string(want) {
				t.Fatalf("marshalDetail:\n got %s, %v\nwant %s", got, err, want)
			}
		})
	}
}

// TestMarshalDetailRefused: a value json.Marshal refuses is refused with
// its error, wherever it is in the detail.
func TestMarshalDetailRefused(t *testing.T) {
	for name, d := range map[string]map[string]any{
		"nan":        {"a": 1, "f": math.NaN()},
		"channel":    {"c": make(chan int)},
		"nested":     {"with": map[string]any{"x": []any{1, math.Inf(1)}}},
		"plan param": {PlanDetail: []PlanStep{{Action: "a", With: map[string]any{"f": func() {}}}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, want := json.Marshal(d)
			got, err := marshalDetail(d)
			if err == nil || want == nil || err.Error() != "marshal detail: "+want.Error() {
				t.Fatalf("marshalDetail: %s, %v; want the error %v", got, err, want)
			}
		})
	}
}

// FuzzMarshalDetail: any text as a key, a value, a list element or a plan
// step's field encodes as json.Marshal encodes it.
func FuzzMarshalDetail(f *testing.F) {
	for _, s := range []string{"", "a", "<&>", "\u2028", "\xff", "\"\\", "\x00\x1f\x7f", "ü"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, k, v string) {
		d := map[string]any{k: v, "list": []any{v, k}, "strings": []string{k}, "with": map[string]any{v: k},
			PlanDetail: []PlanStep{{Action: k, With: map[string]any{k: v}, Decision: v, Reason: k, Silence: v}}}
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := marshalDetail(d)
		if err != nil || string(got) != string(want) {
			t.Fatalf("marshalDetail:\n got %s, %v\nwant %s", got, err, want)
		}
	})
}

// BenchmarkMarshalDetail: a dry-run plan's detail (two playbook.matched
// entries per alert at intake), by marshalDetail and by json.Marshal.
func BenchmarkMarshalDetail(b *testing.B) {
	d := settledPlan(30)
	b.Run("marshalDetail", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := marshalDetail(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
