package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/riposte-sec/riposte/internal/actions"
)

// File names every bundle may hold.
const (
	ManifestFile   = "manifest.json"
	IncompleteFile = "INCOMPLETE" // only in a bundle that failed
)

const (
	partialSuffix    = ".partial"
	incompleteSuffix = ".incomplete"
)

// ErrCap is what a write past the bundle's size cap returns (wrapped).
var ErrCap = errors.New("evidence bundle size cap reached")

// File is one file of a bundle, named relative to the bundle.
type File struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	What   string `json:"what"`
}

// Skipped is a part of the bundle that was not collected, and why.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Bundle is one evidence bundle being written.
type Bundle struct {
	base, id, dir string
	limit, used   int64
	files         []File
	skipped       []Skipped
}

// Create starts a bundle <base>/<id>.partial, adding -2, -3... to id when a
// bundle of that id exists, with a cap of limit bytes over all its files.
func Create(base, id string, limit int64) (*Bundle, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("create evidence bundle: size cap must be positive, got %d", limit)
	}
	if err := os.MkdirAll(base, 0o750); err != nil {
		return nil, fmt.Errorf("create evidence directory: %w", err)
	}
	for i := 1; i < 100; i++ {
		cand := id
		if i > 1 {
			cand = fmt.Sprintf("%s-%d", id, i)
		}
		if _, err := os.Stat(filepath.Join(base, cand)); err == nil {
			continue
		}
		dir := filepath.Join(base, cand+partialSuffix)
		err := os.Mkdir(dir, 0o750)
		if err == nil {
			return &Bundle{base: base, id: cand, dir: dir, limit: limit}, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create evidence directory: %w", err)
		}
	}
	return nil, fmt.Errorf("create evidence directory: too many bundles named %s in %s", id, base)
}

// ID is the bundle's id, also its final directory's name.
func (b *Bundle) ID() string { return b.id }

// Used is how many bytes the bundle's files hold so far.
func (b *Bundle) Used() int64 { return b.used }

// Files lists the files written so far.
func (b *Bundle) Files() []File { return append([]File(nil), b.files...) }

// Skipped lists the parts recorded as not collected.
func (b *Bundle) Skipped() []Skipped { return append([]Skipped(nil), b.skipped...) }

// Skip records that part name was not collected, and why.
func (b *Bundle) Skip(name, reason string) {
	b.skipped = append(b.skipped, Skipped{Name: name, Reason: reason})
}

// Write creates name in the bundle and fills it with fill, hashing and
// counting what fill writes; the file is fsynced before Write returns. A
// write past the cap stops at the cap and returns an error wrapping ErrCap.
func (b *Bundle) Write(name, what string, fill func(w io.Writer) error) error {
	if name != filepath.Base(name) || name == ManifestFile || name == IncompleteFile || name == "." || name == ".." {
		return fmt.Errorf("write %s: not a plain bundle file name", name)
	}
	return b.write(name, what, fill)
}

func (b *Bundle) write(name, what string, fill func(w io.Writer) error) error {
	f, err := os.OpenFile(filepath.Join(b.dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	h := sha256.New()
	cw := &capWriter{w: io.MultiWriter(f, h), b: b}
	ferr := fill(cw)
	if ferr == nil {
		ferr = f.Sync()
	}
	if cerr := f.Close(); ferr == nil {
		ferr = cerr
	}
	if ferr != nil {
		return fmt.Errorf("write %s: %w", name, ferr)
	}
	b.files = append(b.files, File{Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n, What: what})
	return nil
}

// WriteJSON writes v, indented, as name.
func (b *Bundle) WriteJSON(name, what string, v any) error {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return b.Write(name, what, func(w io.Writer) error { _, err := w.Write(append(body, '\n')); return err })
}

type capWriter struct {
	w io.Writer
	b *Bundle
	n int64
}

func (c *capWriter) Write(p []byte) (int, error) {
	room := c.b.limit - c.b.used
	if int64(len(p)) > room {
		// Stop at the cap: write what fits, then refuse.
		n, _ := c.w.Write(p[:room])
		c.b.used += int64(n)
		c.n += int64(n)
		return n, ErrCap
	}
	n, err := c.w.Write(p)
	c.b.used += int64(n)
	c.n += int64(n)
	return n, err
}

// Sealed is a finished bundle.
type Sealed struct {
	Dir      string // the bundle's directory
	Manifest string // its manifest.json
	SHA256   string // the manifest's SHA-256, for the journal
	Files    []File // every file, the manifest last
	Bytes    int64
}

// Seal writes manifest (the caller's manifest type, which lists Files()
// and Skipped()) as manifest.json, outside the cap, and renames the bundle
// to its final name. On error the bundle is abandoned.
func (b *Bundle) Seal(manifest any) (Sealed, error) {
	body, err := json.MarshalIndent(manifest, "", "  ")
	if err != nil {
		return Sealed{}, b.Abandon(fmt.Errorf("encode manifest: %w", err))
	}
	b.limit = b.used + int64(len(body)) + 1 // the manifest is never what breaks the cap
	if err := b.write(ManifestFile, "this manifest", func(w io.Writer) error { _, err := w.Write(append(body, '\n')); return err }); err != nil {
		return Sealed{}, b.Abandon(err)
	}
	if err := syncDir(b.dir); err != nil {
		return Sealed{}, b.Abandon(err)
	}
	final := filepath.Join(b.base, b.id)
	if err := os.Rename(b.dir, final); err != nil {
		return Sealed{}, b.Abandon(fmt.Errorf("seal bundle: %w", err))
	}
	b.dir = final
	if err := syncDir(b.base); err != nil {
		return Sealed{}, err
	}
	return Sealed{Dir: final, Manifest: filepath.Join(final, ManifestFile), SHA256: b.files[len(b.files)-1].SHA256,
		Files: b.Files(), Bytes: b.used}, nil
}

// Fail abandons the bundle after a failed collection and returns the error
// a responder reports: a write past the cap is said in terms of the cap and
// of capFrom, where the cap came from ("the max_bytes parameter"); a
// retryable cause stays retryable.
func (b *Bundle) Fail(cause error, capFrom string) error {
	err := cause
	if errors.Is(cause, ErrCap) {
		err = fmt.Errorf("evidence bundle exceeds its size cap of %s (%d bytes, from %s): %w",
			actions.ByteSize(b.limit), b.limit, capFrom, cause)
	}
	return b.Abandon(err)
}

// Result is what a responder returns for a sealed bundle: kind ("snapshot",
// "evidence") starts the note, the manifest's SHA-256 goes to the journal,
// every file is listed as evidence, and skipped parts are in the detail.
func (s Sealed) Result(kind string, skipped []Skipped) actions.Result {
	res := actions.Result{
		Note:   fmt.Sprintf("%s: %d files, %s, in %s", kind, len(s.Files), actions.ByteSize(s.Bytes), s.Dir),
		SHA256: s.SHA256,
		Detail: map[string]any{"dir": s.Dir, "manifest": s.Manifest, "bytes": s.Bytes},
	}
	for _, f := range s.Files {
		res.Evidence = append(res.Evidence, actions.Evidence{Path: filepath.Join(s.Dir, f.Name), SHA256: f.SHA256, Size: f.Size})
	}
	if len(skipped) > 0 {
		res.Detail["skipped"] = skipped
	}
	return res
}

// Abandon marks a failed bundle: the partial directory is renamed
// <id>.incomplete and gets an INCOMPLETE file, written outside the cap,
// saying why. It returns cause, wrapped with where the partial bundle is.
func (b *Bundle) Abandon(cause error) error {
	note := fmt.Sprintf("This bundle is INCOMPLETE and has no manifest: %v\nFiles written before the failure: %d, %d bytes.\n", cause, len(b.files), b.used)
	werr := os.WriteFile(filepath.Join(b.dir, IncompleteFile), []byte(note), 0o640)
	dest := filepath.Join(b.base, b.id+incompleteSuffix)
	if err := os.Rename(b.dir, dest); err != nil {
		dest = b.dir
	}
	_ = syncDir(b.base)
	if werr != nil {
		return fmt.Errorf("%w; partial bundle left in %s (cannot mark it: %v)", cause, dest, werr)
	}
	return fmt.Errorf("%w; partial bundle left in %s", cause, dest)
}

// Verify checks a sealed bundle: every file its manifest lists has its
// recorded size and SHA-256, and no other file is there. It returns the
// manifest's SHA-256, to compare with the journal's.
func Verify(dir string) (string, error) {
	body, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	sum := sha256.Sum256(body)
	var m struct {
		Files []File `json:"files"`
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&m); err != nil {
		return "", fmt.Errorf("verify bundle %s: read manifest: %w", dir, err)
	}
	if len(m.Files) == 0 {
		return "", fmt.Errorf("verify bundle %s: manifest lists no files", dir)
	}
	listed := map[string]bool{ManifestFile: true}
	var errs []error
	for _, f := range m.Files {
		listed[f.Name] = true
		if f.Name == ManifestFile {
			continue
		}
		if f.Name != filepath.Base(f.Name) || f.Name == "." || f.Name == ".." {
			errs = append(errs, fmt.Errorf("%s: not a plain file name", f.Name))
			continue
		}
		got, n, err := hashFile(filepath.Join(dir, f.Name))
		switch {
		case err != nil:
			errs = append(errs, err)
		case n != f.Size:
			errs = append(errs, fmt.Errorf("%s: size %d, manifest says %d", f.Name, n, f.Size))
		case got != f.SHA256:
			errs = append(errs, fmt.Errorf("%s: sha256 %s, manifest says %s", f.Name, got, f.SHA256))
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	var extra []string
	for _, e := range entries {
		if !listed[e.Name()] {
			extra = append(extra, e.Name())
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		errs = append(errs, fmt.Errorf("files not in the manifest: %s", strings.Join(extra, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("verify bundle %s: %w", dir, err)
	}
	return hex.EncodeToString(sum[:]), nil
}

func hashFile(name string) (string, int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
