package agent

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body, wantErr string
	}{
		{"claim", `{"node":"n","agent":"n/1","max":4,"wait_ms":100}`, ""},
		{"unknown field", `{"node":"n","agnt":"x"}`, `unknown field "agnt"`},
		{"trailing data", `{"node":"n"} {"node":"m"}`, "data after the JSON object"},
		{"not JSON", `node=n`, "decode body"},
		{"too large", `{"node":"` + strings.Repeat("x", maxBody) + `"}`, "body larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode[ClaimRequest](strings.NewReader(tc.body))
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// FuzzDecode: the agent endpoints' bodies (claims, outcomes, heartbeats)
// and a replica's answers never panic the decoder.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"node":"n","agent":"n/1","max":4,"wait_ms":100}`,
		`{"key":"a/p/0","node":"n","agent":"n/1","status":"succeeded","result":{"note":"paused"}}`,
		`{"node":"n","agent":"n/1","running":["a/p/0"]}`,
		`{"work":[{"key":"a/p/0","attempts":2,"request":{"action":"container.pause","alert":{"uuid":"x"},"key":"a/p/0"}}],"lease_ms":15000}`,
		`{`, `null`, `[]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = Decode[ClaimRequest](strings.NewReader(s))
		_, _ = Decode[Outcome](strings.NewReader(s))
		_, _ = Decode[Heartbeat](strings.NewReader(s))
		if r, err := Decode[ClaimResponse](strings.NewReader(s)); err == nil {
			for _, w := range r.Work {
				_ = w.Request.ActionRequest()
			}
		}
	})
}
