package alert

import (
	"encoding/json"
	"testing"
)

// BenchmarkDecode: one Falco alert as Falcosidekick sends it.
func BenchmarkDecode(b *testing.B) {
	body := []byte(shellAlert)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCountValues: what the pre-decode limit costs on the same
// alert's output_fields.
func BenchmarkCountValues(b *testing.B) {
	var w struct {
		OutputFields json.RawMessage `json:"output_fields"`
	}
	if err := json.Unmarshal([]byte(shellAlert), &w); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(w.OutputFields)))
	for b.Loop() {
		if countValues(w.OutputFields, MaxFieldValues) > MaxFieldValues {
			b.Fatal("over the limit")
		}
	}
}
