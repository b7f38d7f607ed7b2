package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/notifiers/stream"
)

// record returns an alert record for writer w, sequence n, with an output
// of about size bytes.
func record(t testing.TB, w, n, size int) stream.Record {
	t.Helper()
	a := alert.Alert{
		ID:       fmt.Sprintf("w%d-%06d", w, n),
		Time:     time.Date(2026, 11, 20, 9, 0, 0, n, time.UTC),
		Rule:     "Terminal shell in container",
		Priority: alert.PriorityWarning,
		Output:   strings.Repeat("é", size/2) + " \"quoted\" \\ line\nbreak",
		OutputFields: map[string]any{
			"container.id": "3f9a1c2b7d4e", "writer": w, "n": n,
		},
	}
	r, err := stream.FromAlert(a, "")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type line struct {
	file string
	id   string
	w, n int
}

// readAll reads base and base.1 … and checks that every line is a whole
// alert; it returns the lines oldest file first.
func readAll(t *testing.T, base string) (lines []line, files []string) {
	t.Helper()
	matches, err := filepath.Glob(base + "*")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(matches, func(i, j int) bool { return suffix(t, base, matches[i]) > suffix(t, base, matches[j]) })
	for _, p := range matches {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		i := 0
		for sc.Scan() {
			i++
			var a struct {
				ID     string `json:"uuid"`
				Fields struct {
					W int `json:"writer"`
					N int `json:"n"`
				} `json:"output_fields"`
			}
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				t.Fatalf("%s line %d is not a whole record: %v: %.80q", p, i, err, sc.Text())
			}
			lines = append(lines, line{file: p, id: a.ID, w: a.Fields.W, n: a.Fields.N})
		}
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		files = append(files, p)
	}
	return lines, files
}

func suffix(t *testing.T, base, p string) int {
	if p == base {
		return 0
	}
	n, err := strconv.Atoi(strings.TrimPrefix(p, base+"."))
	if err != nil {
		t.Fatalf("unexpected file %s", p)
	}
	return n
}

func newFile(t testing.TB, cfg Config) *File {
	t.Helper()
	f, err := New(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// writeConcurrently has writers goroutines write n records each, in order.
func writeConcurrently(t *testing.T, f *File, writers, n int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if err := f.Write(ctx, record(t, w, i, 100+(i*37+w*11)%1200)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestRotationUnderLoadLosesNothing(t *testing.T) {
	tests := []struct {
		fsync      Fsync
		writers, n int
	}{
		{FsyncNever, 8, 1500},
		{FsyncInterval, 8, 1000},
		{FsyncAlways, 4, 250},
	}
	for _, tt := range tests {
		t.Run(string(tt.fsync), func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "logs", "riposte.jsonl")
			cfg := Config{Path: base, MaxSize: 64 << 10, MaxFiles: maxMaxFiles, Fsync: tt.fsync}
			if tt.fsync == FsyncInterval {
				cfg.FsyncInterval = 5 * time.Millisecond
			}
			f := newFile(t, cfg)
			writeConcurrently(t, f, tt.writers, tt.n)
			st := f.Stats()
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			lines, files := readAll(t, base)
			if len(lines) != tt.writers*tt.n {
				t.Fatalf("read %d lines, wrote %d", len(lines), tt.writers*tt.n)
			}
			seen := map[string]bool{}
			for _, l := range lines {
				if seen[l.id] {
					t.Fatalf("record %s written twice", l.id)
				}
				seen[l.id] = true
			}
			if st.Rotations < 10 || uint64(len(files)) != st.Rotations+1 || st.Lines != uint64(len(lines)) {
				t.Errorf("stats %+v, %d files", st, len(files))
			}
			for _, p := range files {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > 64<<10 {
					t.Errorf("%s is %d bytes, above max_size", p, fi.Size())
				}
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
				}
			}
			if fi, err := os.Stat(filepath.Dir(base)); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("directory: %v %v, want 0700", fi.Mode().Perm(), err)
			}
			switch tt.fsync {
			case FsyncAlways:
				if st.Syncs == 0 || st.Syncs > st.Lines+st.Rotations {
					t.Errorf("fsync always: %d syncs for %d lines", st.Syncs, st.Lines)
				}
			case FsyncNever:
				if st.Syncs != 0 {
					t.Errorf("fsync never: %d syncs", st.Syncs)
				}
			}
		})
	}
}

func TestMaxFilesKeepsTheNewest(t *testing.T) {
	base := filepath.Join(t.TempDir(), "riposte.jsonl")
	// Files beyond max_files from an earlier configuration go at start.
	for _, n := range []int{3, 4, 5} {
		if err := os.WriteFile(rotated(base, n), []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f := newFile(t, Config{Path: base, MaxSize: 16 << 10, MaxFiles: 3, Fsync: FsyncNever})
	writeConcurrently(t, f, 4, 600)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	lines, files := readAll(t, base)
	want := []string{base + ".2", base + ".1", base}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files = %q, want %q", files, want)
	}
	// Per writer, what is kept is the end of its sequence, oldest file
	// first and in order.
	last := map[int]int{}
	count := map[int]int{}
	for _, l := range lines {
		if prev, ok := last[l.w]; ok && l.n != prev+1 {
			t.Fatalf("writer %d: record %d follows %d (in %s)", l.w, l.n, prev, l.file)
		}
		last[l.w] = l.n
		count[l.w]++
	}
	// Writers that finished early may have nothing left; those with
	// something kept must end at their last record.
	if len(last) == 0 {
		t.Fatal("nothing kept")
	}
	for w, n := range last {
		if n != 599 {
			t.Errorf("writer %d: last kept %d of 0-599 (%d kept)", w, n, count[w])
		}
	}
	if len(lines) >= 4*600 {
		t.Errorf("kept %d lines: nothing was rotated away", len(lines))
	}
}

func TestMaxFilesOne(t *testing.T) {
	base := filepath.Join(t.TempDir(), "r.jsonl")
	f := newFile(t, Config{Path: base, MaxSize: 4096, MaxFiles: 1, Fsync: FsyncNever})
	for i := 0; i < 40; i++ {
		if err := f.Write(context.Background(), record(t, 0, i, 400)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	lines, files := readAll(t, base)
	if len(files) != 1 || len(lines) == 0 || lines[len(lines)-1].n != 39 {
		t.Errorf("files %q, %d lines", files, len(lines))
	}
}

func TestLongLineGetsItsOwnFile(t *testing.T) {
	base := filepath.Join(t.TempDir(), "r.jsonl")
	f := newFile(t, Config{Path: base, MaxSize: 4096, MaxFiles: 10})
	ctx := context.Background()
	for i, size := range []int{100, 9000, 100} {
		if err := f.Write(ctx, record(t, 0, i, size)); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	lines, files := readAll(t, base)
	if len(files) != 3 || len(lines) != 3 {
		t.Fatalf("files %q lines %d, want 3 and 3", files, len(lines))
	}
	for i, l := range lines {
		if l.file != files[i] || l.n != i {
			t.Errorf("line %d (record %d) in %s", i, l.n, l.file)
		}
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	base := filepath.Join(t.TempDir(), "r.jsonl")
	// A crash left a torn line.
	if err := os.WriteFile(base, []byte(`{"uuid":"old","output_fields":{}}`+"\n"+`{"uuid":"torn","outp`), 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, Config{Path: base})
	if err := f.Write(ctx, record(t, 1, 1, 10)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(got) != 3 || got[1] != `{"uuid":"torn","outp` || !strings.HasPrefix(got[2], `{"uuid":"w1-000001"`) {
		t.Fatalf("file after reopen:\n%s", b)
	}

	// Appending continues the size count: the next rotation happens at
	// max_size, not max_size after the restart.
	base2 := filepath.Join(t.TempDir(), "s.jsonl")
	f2 := newFile(t, Config{Path: base2, MaxSize: 8192, MaxFiles: 5})
	for i := 0; i < 5; i++ {
		if err := f2.Write(ctx, record(t, 0, i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	f2.Close()
	f3 := newFile(t, Config{Path: base2, MaxSize: 8192, MaxFiles: 5})
	for i := 5; i < 10; i++ {
		if err := f3.Write(ctx, record(t, 0, i, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	f3.Close()
	if f3.Stats().Rotations != 1 {
		t.Errorf("rotations after reopen = %d, want 1", f3.Stats().Rotations)
	}
	if lines, _ := readAll(t, base2); len(lines) != 10 {
		t.Errorf("%d lines, want 10", len(lines))
	}
}

// /dev/full fails every write with ENOSPC: the kernel's own full disk.
func TestDevFullIsRetryable(t *testing.T) {
	testutil.Paths(t, "/dev/full")
	f := newFile(t, Config{Path: "/dev/full", Fsync: FsyncNever})
	err := f.Write(context.Background(), record(t, 0, 0, 10))
	if err == nil || !actions.IsRetryable(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write to /dev/full: %v (retryable %v), want retryable ENOSPC", err, actions.IsRetryable(err))
	}
	if !strings.HasPrefix(err.Error(), "write record alert/w0-000000 to /dev/full: ") {
		t.Errorf("error = %q", err)
	}
}

// A real full file system (a 64 KiB tmpfs): the write that does not fit
// fails retryably, leaves no torn line behind, and goes through once there
// is room again.
func TestFullFileSystem(t *testing.T) {
	testutil.Integration(t, testutil.Root)
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=64k,mode=0700"); err != nil {
		testutil.SkipOrFail(t, "cannot mount a tmpfs here: "+err.Error())
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })

	base := filepath.Join(dir, "r.jsonl")
	f := newFile(t, Config{Path: base, MaxSize: 1 << 20, Fsync: FsyncAlways})
	ctx := context.Background()
	ok := 0
	var failed stream.Record
	var err error
	for i := 0; i < 200; i++ {
		r := record(t, 0, i, 2500)
		if err = f.Write(ctx, r); err != nil {
			failed = r
			break
		}
		ok++
	}
	if err == nil || !actions.IsRetryable(err) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("after %d records: %v, want retryable ENOSPC", ok, err)
	}
	if lines, _ := readAll(t, base); len(lines) != ok {
		t.Fatalf("%d whole lines on disk, %d writes succeeded", len(lines), ok)
	}
	if st := f.Stats(); st.Failures == 0 || st.Lines != uint64(ok) {
		t.Errorf("stats %+v after %d records", st, ok)
	}

	// Make room (as an operator would) and retry the same record.
	if err := os.WriteFile(base, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f = newFile(t, Config{Path: base, MaxSize: 1 << 20})
	if err := f.Write(ctx, failed); err != nil {
		t.Fatalf("retry after making room: %v", err)
	}
	f.Close()
	if lines, _ := readAll(t, base); len(lines) != 1 || lines[0].id != failed.ID {
		t.Errorf("after retry: %+v", lines)
	}
}

func TestWriteAfterClose(t *testing.T) {
	f := newFile(t, Config{Path: filepath.Join(t.TempDir(), "r.jsonl")})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	err := f.Write(context.Background(), record(t, 0, 0, 10))
	if err == nil || !actions.IsRetryable(err) || !strings.Contains(err.Error(), "output closed") {
		t.Errorf("write after close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func TestInvalidRecordIsPermanent(t *testing.T) {
	f := newFile(t, Config{Path: filepath.Join(t.TempDir(), "r.jsonl")})
	r := record(t, 0, 0, 10)
	r.JSON = []byte("{\n}")
	err := f.Write(context.Background(), r)
	if err == nil || actions.IsRetryable(err) {
		t.Errorf("err = %v, want permanent", err)
	}
}

func TestIntervalFlushes(t *testing.T) {
	f := newFile(t, Config{Path: filepath.Join(t.TempDir(), "r.jsonl"), Fsync: FsyncInterval, FsyncInterval: 10 * time.Millisecond})
	if err := f.Write(context.Background(), record(t, 0, 0, 10)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Syncs == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background fsync within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"ok", Config{Path: "/var/log/riposte/riposte.jsonl"}, ""},
		{"ok interval", Config{Path: "r.jsonl", Fsync: FsyncInterval, FsyncInterval: time.Second}, ""},
		{"no path", Config{}, "file config: path: missing"},
		{"dir path", Config{Path: "/var/log/"}, `file config: path: want a file, got "/var/log/"`},
		{"small max size", Config{Path: "r", MaxSize: 100}, "file config: max_size: at least 4KiB, got 100"},
		{"negative max files", Config{Path: "r", MaxFiles: -1}, "file config: max_files: want 1 to 1000, got -1"},
		{"policy", Config{Path: "r", Fsync: "sometimes"}, `file config: fsync: unknown policy "sometimes" (want always, interval or never)`},
		{"interval without policy", Config{Path: "r", FsyncInterval: time.Second}, "file config: fsync_interval: only applies with fsync: interval"},
		{"several", Config{MaxFiles: 5000}, "file config: path: missing\nmax_files: want 1 to 1000, got 5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || err.Error() != tt.want {
				t.Errorf("Validate() = %v\nwant         %q", err, tt.want)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(strings.NewReader("path: /tmp/x.jsonl\nmax_size: 10MiB\nmax_files: 3\nfsync: interval\nfsync_interval: 250ms\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.MaxSize != 10<<20 || c.MaxFiles != 3 || c.Fsync != FsyncInterval || c.FsyncInterval != 250*time.Millisecond {
		t.Errorf("decoded %+v", c)
	}
	for _, bad := range []string{"fsync: often\n", "max_size: big\n", "rotate: daily\n"} {
		dec := yaml.NewDecoder(strings.NewReader("path: x\n" + bad))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err == nil {
			t.Errorf("%q decoded", bad)
		}
	}
}
