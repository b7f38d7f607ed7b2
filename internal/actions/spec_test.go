package actions

import "testing"

func TestParamCheck(t *testing.T) {
	severity := Param{Name: "severity", Type: String, Enum: []string{"critical", "error", "warning", "info"}}
	grace := Param{Name: "grace", Type: Duration}
	tests := []struct {
		name  string
		param Param
		v     any
		want  string // "" for accepted
	}{
		{"enum value", severity, "critical", ""},
		{"enum value, case and space", severity, " Warning ", ""},
		{"not in the enum", severity, "urgent", `want one of critical, error, warning, info, got "urgent"`},
		{"a number is not in the enum", severity, 3, "want one of critical, error, warning, info, got 3"},
		{"wrong type before enum", severity, map[string]any{}, "want a string, got a mapping"},
		{"typed, no enum", grace, "5s", ""},
		{"typed, bad value", grace, "soon", `want a duration such as 30s or 5m, got "soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.param.Check(tt.v)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Check(%#v) = %q, want %q", tt.v, got, tt.want)
			}
		})
	}
}

func TestParamTypeName(t *testing.T) {
	if got := (Param{Type: String, Enum: []string{"a", "b"}}).TypeName(); got != "a|b" {
		t.Errorf("enum: %q", got)
	}
	if got := (Param{Type: Bytes}).TypeName(); got != "size" {
		t.Errorf("size: %q", got)
	}
}
