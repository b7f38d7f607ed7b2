package glob

import "testing"

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "anything", true},
		{"Shell spawned *", "Shell spawned by node", true},
		{"Shell spawned *", "Shell spawned", false},
		{"*shell*", "Terminal shell in container", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZ", false},
		{"action.*", "action.succeeded", true},
		{"action.*", "approval.granted", false},
		{"exact", "exact", true},
		{"exact", "exact!", false},
		{"caf?", "café", true},
		{"*é?", "naïvéx", true},
		{"*?", "é", true},
		{"??", "é", false},
	}
	for _, tt := range tests {
		if got := Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
	if !Has("a*") || !Has("?") || Has("plain name") {
		t.Error("Has")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("a*b?c", "aXXbYc")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if !Has(pattern) && Match(pattern, s) != (pattern == s) {
			t.Fatalf("a pattern without globs must match only itself: %q %q", pattern, s)
		}
		if !Match("*", s) {
			t.Fatalf("* must match %q", s)
		}
	})
}
