package alert

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const shellAlert = `{"uuid":"6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41","time":"2026-11-20T09:14:03.512348123Z","rule":"Terminal shell in container","priority":"Notice","source":"syscall","hostname":"staging-node-3","tags":["container","shell"],"output":"shell","output_fields":{"evt.time":1795252443512348123,"container.id":"3f9a1c2b7d4e","container.name":"payments-api","proc.tty":34816,"ratio":0.5}}`

func TestDecodeOne(t *testing.T) {
	got, err := Decode([]byte(shellAlert))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d alerts, want 1", len(got))
	}
	a := got[0]
	want := time.Date(2026, 11, 20, 9, 14, 3, 512348123, time.UTC)
	if a.ID != "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41" || a.Rule != "Terminal shell in container" || a.Priority != PriorityNotice ||
		!a.Time.Equal(want) || a.Source != "syscall" || a.Hostname != "staging-node-3" || len(a.Tags) != 2 {
		t.Fatalf("decoded %+v", a)
	}
	// Nanosecond integers survive exactly; float64 would round them.
	if v, ok := a.OutputFields["evt.time"].(int64); !ok || v != 1795252443512348123 {
		t.Errorf("evt.time = %#v, want int64 1795252443512348123", a.OutputFields["evt.time"])
	}
	if v, ok := a.OutputFields["ratio"].(float64); !ok || v != 0.5 {
		t.Errorf("ratio = %#v, want 0.5", a.OutputFields["ratio"])
	}
	if a.Field("proc.tty") != "34816" || a.Field("container.name") != "payments-api" || a.Field("nope") != "" {
		t.Errorf("Field: tty=%q name=%q nope=%q", a.Field("proc.tty"), a.Field("container.name"), a.Field("nope"))
	}
	if c := a.Container(); c.ID != "3f9a1c2b7d4e" || c.Name != "payments-api" || !a.InContainer() {
		t.Errorf("Container() = %+v", c)
	}
}

func TestDecodeBatchForms(t *testing.T) {
	second := strings.Replace(shellAlert, `"uuid":"6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41",`, `"uuid":"second",`, 1)
	tests := []struct {
		name string
		body string
		n    int
	}{
		{"object", shellAlert, 1},
		{"object with surrounding space", "\n  " + shellAlert + "\n\n", 1},
		{"array", "[" + shellAlert + "," + second + "]", 2},
		{"ndjson", shellAlert + "\n" + second + "\n", 2},
		{"ndjson with crlf", shellAlert + "\r\n" + second + "\r\n", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.n {
				t.Fatalf("got %d alerts, want %d", len(got), tt.n)
			}
			if tt.n == 2 && got[1].ID != "second" {
				t.Errorf("second alert id = %q", got[1].ID)
			}
		})
	}
}

// nested returns n objects each inside the last.
func nested(n int) any {
	var v any = map[string]any{}
	for i := 1; i < n; i++ {
		v = map[string]any{"a": v}
	}
	return v
}

// TestDecodeLimitsCountRaw: commas, brackets and braces inside strings are
// not values; a field list at the limit passes.
func TestDecodeLimitsCountRaw(t *testing.T) {
	fields := map[string]any{"proc.cmdline": strings.Repeat("[{,", 10000)}
	for i := 0; i < MaxFieldValues-2; i++ {
		fields[fmt.Sprintf("f%d", i)] = i
	}
	b, _ := json.Marshal(map[string]any{"time": "2026-11-20T10:01:12Z", "rule": "r", "priority": "Error", "output_fields": fields,
		"tags": make([]string, MaxTags)})
	if _, err := Decode(b); err != nil {
		t.Fatalf("at the limits: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	base := map[string]any{"time": "2026-11-20T10:01:12Z", "rule": "r", "priority": "Error", "output": "o", "output_fields": map[string]any{}}
	with := func(k string, v any) string {
		m := map[string]any{}
		for kk, vv := range base {
			m[kk] = vv
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	tests := []struct {
		name, body, want string
	}{
		{"empty", "  ", "decode alerts: empty body"},
		{"empty array", "[]", "decode alerts: empty array"},
		{"missing rule", with("rule", nil), "decode alert: field rule: missing"},
		{"blank rule", with("rule", "  "), "decode alert: field rule: missing"},
		{"missing time", with("time", nil), "decode alert: field time: missing"},
		{"bad time", with("time", "yesterday"), `decode alert: field time: not an RFC 3339 time: "yesterday"`},
		{"missing priority", with("priority", nil), "decode alert: field priority: missing"},
		{"unknown priority", with("priority", "Severe"), `decode alert: field priority: unknown priority: "Severe"`},
		{"rule not a string", with("rule", 42), "decode alert: field rule: want string, got number"},
		{"tags not strings", with("tags", []int{1}), "decode alert: field tags: want string, got number"},
		{"fields not an object", with("output_fields", "x"), "decode alert: field output_fields: want object, got string"},
		{"not an object", `"hello"`, `decode alert: want a JSON object, got "hello"`},
		{"syntax", `{"rule": }`, "decode alerts: alert 1: invalid JSON at line 1 column 10: invalid character '}' looking for beginning of value"},
		{"second of batch bad", "[" + with("rule", "a") + "," + with("priority", "x") + "]", `alert 2: decode alert: field priority: unknown priority: "x"`},
		{"uuid with space", with("uuid", "a b"), `decode alert: field uuid: must be printable ASCII without spaces: "a b"`},
		{"rule with NUL", with("rule", "a\x00b"), `decode alert: field rule: contains a control character: "a\u0000b"`},
		{"container id with newline", with("output_fields", map[string]any{"container.id": "abc\ndef"}), `decode alert: field output_fields.container.id: contains a control character: "abc\ndef"`},
		{"numeric array in fields", with("output_fields", map[string]any{"x": make([]int, MaxFieldValues+1)}), "decode alert: field output_fields: more than 4096 values"},
		{"nested objects in fields", with("output_fields", map[string]any{"x": nested(MaxFieldValues)}), "decode alert: field output_fields: more than 4096 values"},
		{"too many tags", with("tags", make([]string, MaxTags+1)), "decode alert: field tags: more than 256 tags"},
		{"too many alerts", "[" + strings.Repeat(with("rule", "a")+",", MaxAlerts) + with("rule", "a") + "]", "decode alerts: more than 10000 alerts in one request"},
		{"too many ndjson alerts", strings.Repeat(with("rule", "a")+"\n", MaxAlerts+1), "decode alerts: more than 10000 alerts in one request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode(%s) succeeded, want error %q", tt.body, tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err.Error(), tt.want)
			}
		})
	}
}

func TestPriorityNames(t *testing.T) {
	for _, s := range []string{"info", "INFO", "Informational", "informational"} {
		if p, err := ParsePriority(s); err != nil || p != PriorityInformational {
			t.Errorf("ParsePriority(%q) = %v, %v", s, p, err)
		}
	}
	for _, p := range Priorities() {
		back, err := ParsePriority(strings.ToUpper(p.String()))
		if err != nil || back != p {
			t.Errorf("round trip %v: %v %v", p, back, err)
		}
	}
	if !(PriorityWarning > PriorityNotice && PriorityEmergency > PriorityCritical) {
		t.Error("priorities must grow with severity")
	}
}

func TestDeterministicID(t *testing.T) {
	noID := strings.Replace(shellAlert, `"uuid":"6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41",`, "", 1)
	a1, err := Decode([]byte(noID))
	if err != nil {
		t.Fatal(err)
	}
	// Same alert, keys reordered and re-spaced, tags in another order: same id.
	reordered := `{ "output_fields": {"ratio":0.5, "proc.tty":34816, "container.name":"payments-api", "container.id":"3f9a1c2b7d4e", "evt.time":1795252443512348123},
	  "tags": ["shell", "container"], "output": "shell", "hostname": "staging-node-3", "source": "syscall",
	  "priority": "NOTICE", "rule": "Terminal shell in container", "time": "2026-11-20T10:14:03.512348123+01:00" }`
	a2, err := Decode([]byte(reordered))
	if err != nil {
		t.Fatal(err)
	}
	if a1[0].ID != a2[0].ID {
		t.Errorf("ids differ for the same alert: %s vs %s", a1[0].ID, a2[0].ID)
	}
	if len(a1[0].ID) != 36 || a1[0].ID[14] != '8' {
		t.Errorf("id %q is not a version 8 UUID", a1[0].ID)
	}
	other, err := Decode([]byte(strings.Replace(noID, `"output":"shell"`, `"output":"shell2"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	if other[0].ID == a1[0].ID {
		t.Error("different alerts got the same id")
	}
	// Re-encoding an alert with its derived id keeps it.
	b, err := json.Marshal(a1[0])
	if err != nil {
		t.Fatal(err)
	}
	again, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ID != a1[0].ID {
		t.Errorf("re-decoded id %s, want %s", again[0].ID, a1[0].ID)
	}
}

func TestRoundTrip(t *testing.T) {
	a, err := Decode([]byte(shellAlert))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(a[0])
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(back[0])
	if string(b) != string(b2) {
		t.Errorf("round trip changed the alert:\n%s\n%s", b, b2)
	}
}

// TestFalcoSamples decodes the real Falco and Falcosidekick output kept with
// the design; bad-* samples must be rejected.
func TestFalcoSamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/alerts/*")
	if len(files) == 0 {
		t.Fatal("no samples in examples/alerts")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			alerts, err := Decode(data)
			if strings.HasPrefix(filepath.Base(f), "bad-") {
				if err == nil {
					t.Fatalf("bad sample accepted: %+v", alerts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range alerts {
				if a.ID == "" || a.Rule == "" || a.Time.IsZero() {
					t.Errorf("incomplete alert %+v", a)
				}
			}
		})
	}
}

// TestMarshalJSONAsWire: an alert is encoded to the bytes json.Marshal
// writes for its wire form, whatever its fields hold (detector alerts
// carry Go values Decode never makes); one json.Marshal refuses is refused
// with its error.
func TestMarshalJSONAsWire(t *testing.T) {
	base := Alert{ID: "a-1", Time: time.Date(2025, 3, 1, 12, 0, 0, 5, time.FixedZone("x", 3600)), Rule: "Terminal <shell> & co",
		Priority: PriorityWarning, Output: "line\nwith \"quotes\" \u2028 and \xff", Source: "syscall", Tags: []string{"container", "<t>"}, Hostname: "node-1",
		OutputFields: map[string]any{"container.id": "3f9a1c2b4d5e", "evt.time": int64(1740830400000000000), "n": 42, "f": 0.25, "b": true, "nil": nil,
			"list": []any{"x", int64(1)}, "u": uint32(7), "m": map[string]any{"z": "<", "a": []string{"y"}}}}
	cases := map[string]func(*Alert){
		"full":       func(*Alert) {},
		"no id":      func(a *Alert) { a.ID = "" },
		"bare":       func(a *Alert) { a.Source, a.Hostname, a.Tags, a.OutputFields = "", "", nil, nil },
		"zero time":  func(a *Alert) { a.Time = time.Time{} },
		"empty tags": func(a *Alert) { a.Tags = []string{} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			a := base
			a.OutputFields = maps.Clone(base.OutputFields)
			edit(&a)
			got, err := a.MarshalJSON()
			want, wantErr := a.marshalWire()
			if err != nil || wantErr != nil || string(got) != string(want) {
				t.Fatalf("MarshalJSON:\n got %s, %v\nwant %s, %v", got, err, want, wantErr)
			}
		})
	}
	for name, edit := range map[string]func(*Alert){
		"bad priority": func(a *Alert) { a.Priority = 99 },
		"nan field":    func(a *Alert) { a.OutputFields["f"] = math.NaN() },
	} {
		t.Run(name, func(t *testing.T) {
			a := base
			a.OutputFields = maps.Clone(base.OutputFields)
			edit(&a)
			_, err := a.MarshalJSON()
			_, wantErr := json.Marshal(&a)
			if err == nil || wantErr == nil || !strings.Contains(wantErr.Error(), err.Error()) {
				t.Fatalf("MarshalJSON error %v, want json.Marshal's %v", err, wantErr)
			}
		})
	}
}
