package alert

import (
	"encoding/json"
	"strings"
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

// BenchmarkDecodeStored: the same alert as the store keeps it, read back
// by the engine's claim, against Decode of the same bytes.
func BenchmarkDecodeStored(b *testing.B) {
	as, err := Decode([]byte(shellAlert))
	if err != nil {
		b.Fatal(err)
	}
	stored, err := as[0].MarshalJSON()
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name   string
		decode func([]byte) error
	}{
		{"Decode", func(raw []byte) error { _, err := Decode(raw); return err }},
		{"DecodeStored", func(raw []byte) error { _, err := DecodeStored(raw); return err }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(stored)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.decode(stored); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMarshalJSON: the stored form of one Falco alert (the store
// encodes every accepted alert), against json.Marshal of its wire form.
func BenchmarkMarshalJSON(b *testing.B) {
	as, err := Decode([]byte(shellAlert))
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		enc  func() ([]byte, error)
	}{{"MarshalJSON", as[0].MarshalJSON}, {"json.Marshal", as[0].marshalWire}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.enc(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeNDJSON: 20 alerts a request, as NDJSON, by Decode and by
// the general path (decodeAll, a json.Decoder splitting the values).
func BenchmarkDecodeNDJSON(b *testing.B) {
	body := []byte(strings.Repeat(shellAlert+"\n", 20))
	for _, bc := range []struct {
		name   string
		decode func([]byte) ([]Alert, error)
	}{{"Decode", Decode}, {"decodeAll", decodeAll}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if as, err := bc.decode(body); err != nil || len(as) != 20 {
					b.Fatal(len(as), err)
				}
			}
		})
	}
}
