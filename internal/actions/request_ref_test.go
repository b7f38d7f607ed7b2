package actions

import (
	"strings"
	"testing"

	"github.com/riposte-sec/riposte/internal/alert"
)

func TestContainerRef(t *testing.T) {
	withFields := func(f map[string]any) alert.Alert { return alert.Alert{OutputFields: f} }
	for _, tc := range []struct {
		name    string
		req     Request
		want    string
		wantErr string
	}{
		{"given wins", Request{Container: "web", Alert: withFields(map[string]any{"container.id": "3f9a1c2b7d4e"})}, "web", ""},
		{"alert id", Request{Alert: withFields(map[string]any{"container.id": "3f9a1c2b7d4e", "container.name": "web"})}, "3f9a1c2b7d4e", ""},
		{"alert name", Request{Alert: withFields(map[string]any{"container.name": "web"})}, "web", ""},
		{"host", Request{Alert: withFields(map[string]any{"container.id": "host"})}, "", "about the host"},
		{"none", Request{}, "", "names none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.req.ContainerRef()
			if got != tc.want || (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ContainerRef() = %q, %v; want %q, %q", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
