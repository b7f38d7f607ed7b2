package guard

import "testing"

func TestLabel(t *testing.T) {
	for _, tc := range []struct {
		spec   string
		labels map[string]string
		want   bool
	}{
		{"riposte.protect=true", map[string]string{"riposte.protect": "true"}, true},
		{"riposte.protect=true", map[string]string{"riposte.protect": "True"}, true},
		{"riposte.protect=true", map[string]string{"riposte.protect": "1"}, true},
		{"riposte.protect=true", map[string]string{"riposte.protect": "false"}, false},
		{"riposte.protect=true", map[string]string{"riposte.protect": "yes"}, false},
		{"riposte.protect=true", map[string]string{"other": "true"}, false},
		{"riposte.protect=true", nil, false},
		{"tier=db", map[string]string{"tier": " db "}, true},
		{"tier=db", map[string]string{"tier": "web"}, false},
		{"riposte.protect=true", map[string]string{"riposte.protect": ""}, false},
		{"keep", map[string]string{"keep": ""}, true},
		{"example.com/keep", map[string]string{"example.com/keep": ""}, true},
		{"example.com/keep", map[string]string{"example.com/other": "x"}, false},
		{"keep", map[string]string{"kept": "x"}, false},
		{"", map[string]string{"": ""}, false},
	} {
		if got := ParseLabel(tc.spec).Matches(tc.labels); got != tc.want {
			t.Errorf("ParseLabel(%q).Matches(%v) = %v, want %v", tc.spec, tc.labels, got, tc.want)
		}
	}
	if k := ParseLabel(" riposte.protect = true ").Key(); k != "riposte.protect" {
		t.Errorf("key %q", k)
	}
}
