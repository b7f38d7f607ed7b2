package anchor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/riposte-sec/riposte/internal/store"
)

// Checkpoint is a signed statement that the journal's entry Seq had hash
// Hash at Time.
type Checkpoint struct {
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	Time      time.Time `json:"time"`
	PublicKey string    `json:"public_key"` // hex ed25519 public key
	Signature string    `json:"signature"`  // hex ed25519 signature of Message()
}

// Message is what the signature covers.
func (c Checkpoint) Message() []byte {
	return []byte("riposte.checkpoint.v1\n" + strconv.FormatInt(c.Seq, 10) + "\n" + c.Hash + "\n" + store.FormatTime(c.Time))
}

// Sign returns the checkpoint of head, signed with key.
func Sign(key ed25519.PrivateKey, head store.Head) Checkpoint {
	c := Checkpoint{Seq: head.Seq, Hash: head.Hash, Time: head.Time.UTC(),
		PublicKey: hex.EncodeToString(key.Public().(ed25519.PublicKey))}
	c.Signature = hex.EncodeToString(ed25519.Sign(key, c.Message()))
	return c
}

// Verify checks the signature against the checkpoint's own key, and, when
// pinned is not nil, that the key is pinned.
func (c Checkpoint) Verify(pinned ed25519.PublicKey) error {
	pub, err := hex.DecodeString(c.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return errors.New("public_key: want 64 hex digits")
	}
	if pinned != nil && !bytes.Equal(pub, pinned) {
		return fmt.Errorf("signed by key %s…, not by the key given", c.PublicKey[:16])
	}
	sig, err := hex.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("signature: want 128 hex digits")
	}
	if !ed25519.Verify(pub, c.Message(), sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

// Detail is the checkpoint as a journal entry's detail.
func (c Checkpoint) Detail() map[string]any {
	return map[string]any{"seq": c.Seq, "hash": c.Hash, "time": store.FormatTime(c.Time),
		"public_key": c.PublicKey, "signature": c.Signature}
}

// LoadOrCreateKey reads an ed25519 private key (PEM, PKCS #8, as `openssl
// genpkey -algorithm ed25519` writes it) from path, or creates one there
// (mode 0600) when the file does not exist. created reports a new key.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("create anchor key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, false, fmt.Errorf("create anchor key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, fmt.Errorf("create anchor key: %w", err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, false, fmt.Errorf("create anchor key: %w", err)
		}
		if err := errors.Join(pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}), f.Sync(), f.Close()); err != nil {
			return nil, false, fmt.Errorf("create anchor key %s: %w", path, err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read anchor key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, false, fmt.Errorf("read anchor key %s: want a PEM PRIVATE KEY block (PKCS #8 ed25519)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, false, fmt.Errorf("read anchor key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, false, fmt.Errorf("read anchor key %s: a %T, want ed25519", path, k)
	}
	return ek, false, nil
}

// ParsePublicKey reads a public key given as 64 hex digits or as a PEM
// PUBLIC KEY block (PKIX).
func ParsePublicKey(text []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(text); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: a %T, want ed25519", k)
		}
		return ek, nil
	}
	b, err := hex.DecodeString(string(bytes.TrimSpace(text)))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("parse public key: want 64 hex digits or a PEM PUBLIC KEY block")
	}
	return b, nil
}

// maxLine bounds one line of an anchor file.
const maxLine = 4096

// Read parses an anchor file: one checkpoint (JSON) per line, blank lines
// ignored. Errors name the line. Signatures are not checked here.
func Read(r io.Reader) ([]Checkpoint, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, maxLine), maxLine)
	var out []Checkpoint
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var c Checkpoint
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("read anchors: line %d: %w", n, err)
		}
		if c.Seq <= 0 {
			return nil, fmt.Errorf("read anchors: line %d: seq must be positive, got %d", n, c.Seq)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read anchors: %w", err)
	}
	return out, nil
}

// Journal is what the writer needs of the store.
type Journal interface {
	Head(ctx context.Context) (store.Head, error)
	Append(ctx context.Context, entries ...store.Entry) ([]store.Entry, error)
}

// Writer writes checkpoints to the journal and to an anchor file.
type Writer struct {
	key   ed25519.PrivateKey
	j     Journal
	file  string
	every int64
	log   *slog.Logger

	mu   sync.Mutex
	last int64 // seq of the last entry written by Checkpoint (the checkpoint entry itself)
}

// NewWriter returns a writer that checkpoints when at least every entries
// were added since the last checkpoint (every <= 0: 1000). file "" writes
// to the journal only.
func NewWriter(key ed25519.PrivateKey, j Journal, file string, every int64, log *slog.Logger) *Writer {
	if every <= 0 {
		every = 1000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{key: key, j: j, file: file, every: every, log: log}
}

// Checkpoint signs the current head and writes it, first to the anchor
// file (synced), then to the journal. ok is false when there was nothing
// to anchor: an empty journal, or nothing since the last checkpoint.
func (w *Writer) Checkpoint(ctx context.Context) (c Checkpoint, ok bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.checkpoint(ctx, 1)
}

// checkpoint writes one when at least min entries are new.
func (w *Writer) checkpoint(ctx context.Context, min int64) (Checkpoint, bool, error) {
	head, err := w.j.Head(ctx)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("checkpoint journal: %w", err)
	}
	if head.Seq == 0 || head.Seq-w.last < min {
		return Checkpoint{}, false, nil
	}
	c := Sign(w.key, head)
	if w.file != "" {
		if err := appendLine(w.file, c); err != nil {
			return Checkpoint{}, false, fmt.Errorf("checkpoint journal: %w", err)
		}
	}
	es, err := w.j.Append(ctx, store.Entry{Type: store.JournalCheckpoint, Actor: "riposte", Detail: c.Detail()})
	if err != nil {
		return c, false, fmt.Errorf("checkpoint journal: %w", err)
	}
	w.last = es[len(es)-1].Seq
	return c, true, nil
}

func appendLine(path string, c Checkpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open anchor file: %w", err)
	}
	_, werr := f.Write(append(line, '\n'))
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write anchor file %s: %w", path, err)
	}
	return nil
}

// Run checkpoints every poll when Every entries were added, until ctx
// ends. Failures are logged (the next round tries again).
func (w *Writer) Run(ctx context.Context, poll time.Duration) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		c, ok, err := w.checkpoint(ctx, w.every)
		w.mu.Unlock()
		switch {
		case err != nil:
			w.log.Error("write journal checkpoint", "err", err)
		case ok:
			w.log.Debug("journal checkpoint", "seq", c.Seq, "hash", c.Hash)
		}
	}
}

// Reader is what Check needs of a journal.
type Reader interface {
	Head(ctx context.Context) (store.Head, error)
	Entries(ctx context.Context, f store.Filter) ([]store.Entry, error)
}

// Check compares the journal with checkpoints (each verified against
// pinned, or its own key when pinned is nil). It returns the first
// problem found, nil when every checkpoint matches: a checkpoint beyond
// the journal's head means its tail was cut (or it was emptied); an entry
// whose hash differs means the journal was rewritten.
func Check(ctx context.Context, r Reader, cps []Checkpoint, pinned ed25519.PublicKey) (problem string, err error) {
	head, err := r.Head(ctx)
	if err != nil {
		return "", fmt.Errorf("check anchors: %w", err)
	}
	for i, c := range cps {
		if err := c.Verify(pinned); err != nil {
			return fmt.Sprintf("checkpoint %d (seq %d): %v", i+1, c.Seq, err), nil
		}
		if p := Expect(ctx, r, head, c.Seq, c.Hash); p != "" {
			return fmt.Sprintf("checkpoint %d (head at %s): %s", i+1, store.FormatTime(c.Time), p), nil
		}
	}
	return "", nil
}

// Expect checks that the journal whose head is head has hash at seq; it
// returns the problem, "" when it matches. A read error is a problem too.
func Expect(ctx context.Context, r Reader, head store.Head, seq int64, hash string) string {
	if seq > head.Seq {
		if head.Seq == 0 {
			return fmt.Sprintf("entry %d was anchored but the journal is empty: it was emptied", seq)
		}
		return fmt.Sprintf("entry %d was anchored but the journal ends at seq %d: its tail was cut", seq, head.Seq)
	}
	es, err := r.Entries(ctx, store.Filter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return fmt.Sprintf("read entry %d: %v", seq, err)
	}
	if len(es) == 0 || es[0].Seq != seq {
		return fmt.Sprintf("entry %d was anchored but is missing: entries were removed", seq)
	}
	if es[0].Hash != hash {
		return fmt.Sprintf("entry %d has hash %s, anchored as %s: the journal was rewritten", seq, es[0].Hash, hash)
	}
	return ""
}
