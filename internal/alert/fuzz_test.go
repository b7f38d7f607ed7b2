package alert

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzDecode: any input either decodes into alerts that re-encode and decode
// to the same ids, or fails with an error; it never panics.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(shellAlert))
	f.Add([]byte("[" + shellAlert + "]"))
	f.Add([]byte(shellAlert + "\n" + shellAlert))
	f.Add([]byte(shellAlert + shellAlert + "\r\n\t " + shellAlert + "\n"))
	f.Add([]byte(shellAlert + "\n[" + shellAlert + "]"))
	f.Add([]byte(shellAlert + "\n{\"rule\":\"r\"}"))
	f.Add([]byte(`{"time":"2026-11-20T10:01:12Z","priority":"Error","output":"no rule"}`))
	f.Add([]byte(`{"rule":"r","priority":"info","time":"2026-11-20T10:01:12.5+02:00","output_fields":{"a":[1,{"b":2e400}]}}`))
	f.Add([]byte(`[{"rule":1}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := Decode(data)
		if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 {
			// The fast paths (one object, objects one after another) say
			// what the general one says.
			all, allErr := decodeAll(trimmed)
			if (err == nil) != (allErr == nil) || (err != nil && err.Error() != allErr.Error()) || !reflect.DeepEqual(alerts, all) {
				t.Fatalf("Decode %v, %v; decodeAll %v, %v", alerts, err, all, allErr)
			}
		}
		if err != nil {
			if len(alerts) != 0 {
				t.Fatalf("error %v with %d alerts", err, len(alerts))
			}
			return
		}
		if len(alerts) == 0 {
			t.Fatal("no error and no alerts")
		}
		for _, a := range alerts {
			if a.Rule == "" || a.ID == "" {
				t.Fatalf("accepted alert without rule or id: %+v", a)
			}
			b, err := json.Marshal(a)
			if err != nil {
				t.Fatalf("marshal accepted alert: %v", err)
			}
			back, err := Decode(b)
			if err != nil {
				t.Fatalf("re-decode %s: %v", b, err)
			}
			if back[0].ID != a.ID {
				t.Fatalf("id changed on round trip: %s -> %s", a.ID, back[0].ID)
			}
		}
	})
}

// FuzzDecodeStored: whatever Decode accepts, stored as MarshalJSON writes
// it, DecodeStored reads back as the same alert that Decode reads back;
// any other input fails or decodes without a panic.
func FuzzDecodeStored(f *testing.F) {
	f.Add([]byte(shellAlert))
	f.Add([]byte(`{"rule":"r","priority":"info","time":"2026-11-20T10:01:12.5+02:00","output_fields":{"evt.time":1763632872123456789,"a":[1,{"b":2.5}],"n":null}}`))
	f.Add([]byte(`{"uuid":"x","rule":"r","priority":"nope","time":"2026-11-20T10:01:12Z"}`))
	f.Add([]byte(`{"rule":"r","time":"2026-11-20T10:01:12Z","output_fields":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		stored, err := DecodeStored(data) // must not panic
		if err == nil && (stored.Rule == "" || stored.OutputFields == nil) {
			t.Fatalf("decoded without rule or fields: %+v", stored)
		}
		alerts, err := Decode(data)
		if err != nil {
			return
		}
		for _, a := range alerts {
			raw, err := a.MarshalJSON()
			if err != nil {
				t.Fatalf("marshal accepted alert: %v", err)
			}
			want, err := Decode(raw)
			if err != nil {
				t.Fatalf("re-decode %s: %v", raw, err)
			}
			got, err := DecodeStored(raw)
			if err != nil {
				t.Fatalf("decode stored %s: %v", raw, err)
			}
			if !reflect.DeepEqual(got, want[0]) {
				t.Fatalf("stored form read back differently:\n got %#v\nwant %#v", got, want[0])
			}
		}
	})
}

// FuzzMarshalJSON: whatever Decode accepts is stored (MarshalJSON) as the
// bytes json.Marshal writes for it.
func FuzzMarshalJSON(f *testing.F) {
	f.Add([]byte(shellAlert))
	f.Add([]byte(`{"rule":"r<&>","priority":"info","time":"2026-11-20T10:01:12.5+02:00","output_fields":{"evt.time":1763632872123456789,"a":[1,{"b":2.5e-7}],"n":null,"\u2028":"\xff"}}`))
	f.Add([]byte(`{"rule":"r","priority":"debug","time":"2026-11-20T10:01:12Z","tags":["a\"b"],"hostname":"h\n","source":"s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		alerts, err := Decode(data)
		if err != nil {
			return
		}
		for _, a := range alerts {
			got, err := a.MarshalJSON()
			want, wantErr := a.marshalWire()
			if err != nil || wantErr != nil || !bytes.Equal(got, want) {
				t.Fatalf("MarshalJSON:\n got %s, %v\nwant %s, %v", got, err, want, wantErr)
			}
		}
	})
}
