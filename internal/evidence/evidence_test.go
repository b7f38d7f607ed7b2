package evidence

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testManifest struct {
	Version int       `json:"version"`
	Files   []File    `json:"files"`
	Skipped []Skipped `json:"skipped,omitempty"`
}

// sealed writes a bundle with two files and a skipped part.
func sealed(t *testing.T, base string) Sealed {
	t.Helper()
	b, err := Create(base, "20260101T000000.000Z", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write("a.txt", "text", func(w io.Writer) error { _, err := io.WriteString(w, "hello\n"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteJSON("b.json", "json", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	b.Skip("c.txt", "unavailable: test")
	s, err := b.Seal(testManifest{Version: 1, Files: b.Files(), Skipped: b.Skipped()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealAndVerify(t *testing.T) {
	base := t.TempDir()
	s := sealed(t, base)
	if s.Dir != filepath.Join(base, "20260101T000000.000Z") {
		t.Fatalf("sealed in %s", s.Dir)
	}
	body, err := os.ReadFile(s.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	if s.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Sealed.SHA256 %s is not the manifest's hash", s.SHA256)
	}
	got, err := Verify(s.Dir)
	if err != nil || got != s.SHA256 {
		t.Fatalf("Verify = %s, %v; want %s", got, err, s.SHA256)
	}
	if len(s.Files) != 3 || s.Files[2].Name != ManifestFile {
		t.Fatalf("files %v, want a.txt, b.json, manifest.json", s.Files)
	}
	// A second bundle of the same id gets a suffix, not the first one's dir.
	b, err := Create(base, "20260101T000000.000Z", 10)
	if err != nil || b.ID() != "20260101T000000.000Z-2" {
		t.Fatalf("second Create: id %v err %v", b, err)
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(dir string) error
		want   string
	}{
		{"edited file", func(d string) error { return os.WriteFile(filepath.Join(d, "a.txt"), []byte("HELLO\n"), 0o640) }, "a.txt: sha256"},
		{"truncated file", func(d string) error { return os.WriteFile(filepath.Join(d, "a.txt"), []byte("he"), 0o640) }, "a.txt: size 2, manifest says 6"},
		{"removed file", func(d string) error { return os.Remove(filepath.Join(d, "b.json")) }, "b.json"},
		{"added file", func(d string) error { return os.WriteFile(filepath.Join(d, "x"), nil, 0o640) }, "files not in the manifest: x"},
		{"no manifest", func(d string) error { return os.Remove(filepath.Join(d, ManifestFile)) }, "manifest.json"},
		{"bad manifest", func(d string) error { return os.WriteFile(filepath.Join(d, ManifestFile), []byte("{"), 0o640) }, "read manifest"},
		{"escaping name", func(d string) error {
			return os.WriteFile(filepath.Join(d, ManifestFile), []byte(`{"files":[{"name":"../a.txt"}]}`), 0o640)
		}, "../a.txt: not a plain file name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sealed(t, t.TempDir())
			if err := tc.tamper(s.Dir); err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(s.Dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Verify after %s: %v, want %q", tc.name, err, tc.want)
			}
		})
	}
}

func TestCapAbandonsBundle(t *testing.T) {
	base := t.TempDir()
	b, err := Create(base, "id", 8)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Write("big.txt", "too big", func(w io.Writer) error { _, err := io.WriteString(w, "0123456789"); return err })
	if !errors.Is(err, ErrCap) {
		t.Fatalf("write past the cap: %v, want ErrCap", err)
	}
	err = b.Abandon(err)
	if !errors.Is(err, ErrCap) || !strings.Contains(err.Error(), "id.incomplete") {
		t.Fatalf("Abandon: %v", err)
	}
	note, rerr := os.ReadFile(filepath.Join(base, "id.incomplete", IncompleteFile))
	if rerr != nil || !strings.Contains(string(note), "INCOMPLETE") {
		t.Fatalf("INCOMPLETE file: %q %v", note, rerr)
	}
	if _, err := os.Stat(filepath.Join(base, "id")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an abandoned bundle has a sealed directory: %v", err)
	}
}

func TestWriteRefusesBadNames(t *testing.T) {
	b, err := Create(t.TempDir(), "id", 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../x", "a/b", ManifestFile, IncompleteFile, ".."} {
		if err := b.Write(name, "", func(io.Writer) error { return nil }); err == nil || !strings.Contains(err.Error(), "not a plain bundle file name") {
			t.Errorf("Write(%q) = %v, want a refusal", name, err)
		}
	}
	if _, err := Create(t.TempDir(), "id", 0); err == nil {
		t.Error("Create with a zero cap succeeded")
	}
}

// FuzzVerify feeds Verify arbitrary manifests: it must answer with a hash
// or an error, never panic, and never accept a manifest that names a file
// outside the bundle.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(`{"version":1,"files":[{"name":"a.txt","sha256":"5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03","size":6}]}`))
	f.Add([]byte(`{"files":[{"name":"../../etc/passwd"}]}`))
	f.Add([]byte(`{"files":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, manifest []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("hello\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ManifestFile), manifest, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := Verify(dir); err == nil {
			// Only a manifest listing a.txt with its true hash (and itself)
			// may verify: nothing outside the bundle, nothing made up.
			var m testManifest
			if err := json.Unmarshal(manifest, &m); err != nil {
				t.Fatalf("verified a manifest that does not decode: %v", err)
			}
			for _, file := range m.Files {
				if file.Name != "a.txt" && file.Name != ManifestFile {
					t.Fatalf("verified a manifest listing %q", file.Name)
				}
			}
		}
	})
}
