package assembly

import (
	"strings"
	"testing"
)

func TestCheckAgent(t *testing.T) {
	tests := []struct {
		node, agent, wantErr string
	}{
		{"node-a", "node-a/3fa2c1", ""},
		{"", "node-a/1", "node and agent are required"},
		{"node-a", "", "node and agent are required"},
		{"node-a", "node-b/1", `want node-a/<id>`},
		{"node-a", "node-a/", `want node-a/<id>`},
		{"node\nfake", "node\nfake/1", "control or format character"},
		{strings.Repeat("n", 300), "x/1", "longer than a host name"},
	}
	for _, tc := range tests {
		t.Run(tc.node+" "+tc.agent, func(t *testing.T) {
			err := checkAgent(tc.node, tc.agent)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}
