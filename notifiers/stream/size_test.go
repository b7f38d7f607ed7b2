package stream

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSize(t *testing.T) {
	tests := []struct {
		yaml string
		want Size
		str  string
		err  string
	}{
		{"1048576", 1 << 20, "1MiB", ""},
		{"100MiB", 100 << 20, "100MiB", ""},
		{"512KiB", 512 << 10, "512KiB", ""},
		{"50MB", 50_000_000, "50000000 bytes", ""},
		{"4097", 4097, "4097 bytes", ""},
		{"lots", 0, "", "want a size such as 1048576, 512KiB or 50MB"},
		{"-1", 0, "", "want a size such as"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			var v struct {
				S Size `yaml:"s"`
			}
			err := yaml.Unmarshal([]byte("s: "+tt.yaml), &v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.S != tt.want || v.S.String() != tt.str {
				t.Errorf("got %d (%s), want %d (%s)", v.S, v.S, tt.want, tt.str)
			}
		})
	}
}
