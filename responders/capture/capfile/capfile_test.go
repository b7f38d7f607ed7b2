package capfile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/detector/event"
)

var t0 = time.Date(2026, 5, 7, 21, 9, 36, 123456789, time.UTC)

func testHeader() Header {
	return Header{CaptureID: "c1", Started: t0, Hostname: "node1",
		Container: Container{ID: strings.Repeat("ab", 32), Name: "web", Image: "nginx:1", PID: 4242,
			Networks: []Network{{Name: "bridge", IP: "172.17.0.2", Gateway: "172.17.0.1"}}},
		Incident: "inc-1", Duration: 30 * time.Second, MaxBytes: 1 << 20, EndsAt: t0.Add(30 * time.Second)}
}

func testEvents(n int) []event.Event {
	out := make([]event.Event, n)
	for i := range out {
		out[i] = event.Event{Type: event.Open, Syscall: "openat", Time: t0.Add(time.Duration(i) * time.Millisecond),
			PID: uint32(100 + i), PPID: 1, Comm: "cat", Exe: "/bin/cat", Args: []string{"cat", "/etc/shadow"},
			Path: "/etc/shadow", Flags: 0o2000000, Ret: 3, Container: event.Container{ID: strings.Repeat("ab", 32)}}
	}
	return out
}

// writeFile writes a complete capture file.
func writeFile(t testing.TB, events []event.Event, opts WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Process(Process{PID: 4242, PPID: 4200, VPID: 1, Comm: "sh", Args: []string{"sh"}, Started: t0}); err != nil {
		t.Fatal(err)
	}
	if err := w.Socket(Socket{Proto: "tcp", State: "LISTEN", LocalAddr: "0.0.0.0", LocalPort: 80, Inode: 9, PIDs: []uint32{4242}}); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if err := w.Event(&events[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(Trailer{Ended: t0.Add(time.Second), Reason: ReasonDuration}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(data []byte) (*Reader, []Record, error) {
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r, recs, nil
		}
		if err != nil {
			return r, recs, err
		}
		recs = append(recs, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	events := testEvents(1000)
	data := writeFile(t, events, WriterOptions{FlushEvery: 4096})
	r, recs, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	h := r.Header()
	if h.Format != Format || h.Version != Version || h.Container.Name != "web" || !h.Started.Equal(t0) || h.Duration != 30*time.Second {
		t.Errorf("header = %+v", h)
	}
	if len(recs) != 2+len(events) {
		t.Fatalf("read %d records, want %d", len(recs), 2+len(events))
	}
	if recs[0].Kind != KindProcess || recs[0].Process.Comm != "sh" || recs[1].Kind != KindSocket || recs[1].Socket.LocalPort != 80 {
		t.Errorf("state records = %+v %+v", recs[0], recs[1])
	}
	for i, rec := range recs[2:] {
		want, _ := json.Marshal(events[i])
		got, _ := json.Marshal(rec.Event)
		if rec.Kind != KindEvent || !bytes.Equal(got, want) {
			t.Fatalf("event %d = %s, want %s", i, got, want)
		}
	}
	tr := r.Trailer()
	if tr == nil || tr.Events != uint64(len(events)) || tr.Reason != ReasonDuration {
		t.Errorf("trailer = %+v", tr)
	}
	// The content is plain JSON lines a third party can read.
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	lines := strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n")
	if len(lines) != 4+len(events) || !strings.HasPrefix(lines[0], `{"record":"header","header":{"format":"riposte-capture","version":1,`) ||
		!strings.HasPrefix(lines[len(lines)-1], `{"record":"trailer","trailer":{`) {
		t.Errorf("plain content: %d lines, first %q, last %q", len(lines), lines[0], lines[len(lines)-1])
	}
}

// TestIncomplete: a file cut anywhere after its first flush reads up to
// that point and reports ErrIncomplete, never a different error or a panic.
func TestIncomplete(t *testing.T) {
	events := testEvents(300)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader(), WriterOptions{FlushEvery: 2048})
	if err != nil {
		t.Fatal(err)
	}
	var flushedAt []int // file sizes at which everything written so far is readable
	for i := range events {
		if err := w.Event(&events[i]); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			flushedAt = append(flushedAt, buf.Len())
		}
	}
	// Riposte died here: no Close.
	data := buf.Bytes()
	for i, n := range flushedAt {
		for _, cut := range []int{n, n + 7} {
			if cut > len(data) {
				continue
			}
			_, recs, err := readAll(data[:cut])
			if !errors.Is(err, ErrIncomplete) {
				t.Fatalf("cut at %d: err = %v, want ErrIncomplete", cut, err)
			}
			if want := 50 * (i + 1); len(recs) < want {
				t.Errorf("cut at %d (flush %d): %d events, want at least %d", cut, i, len(recs), want)
			}
		}
	}
	// A properly closed file cut inside the trailer is incomplete too.
	full := writeFile(t, events, WriterOptions{})
	_, _, err = readAll(full[:len(full)-12])
	if !errors.Is(err, ErrIncomplete) {
		t.Errorf("cut in the footer: err = %v", err)
	}
}

func gz(s string) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write([]byte(s))
	w.Close()
	return buf.Bytes()
}

const hdr = `{"record":"header","header":{"format":"riposte-capture","version":1,"capture_id":"c"}}` + "\n"
const trl = `{"record":"trailer","trailer":{"reason":"duration"}}` + "\n"

func TestReaderErrors(t *testing.T) {
	corrupt := gz(hdr + trl)
	corrupt[len(corrupt)-6] ^= 0xff // CRC-32 in the footer
	tests := []struct {
		name    string
		data    []byte
		openErr string // NewReader's error
		nextErr string // the first error of Next
	}{
		{"short", []byte("hello"), "not a riposte capture file (unexpected EOF)", ""},
		{"not gzip", []byte("hello, this is not a capture file"), "not a riposte capture file (gzip: invalid header)", ""},
		{"empty gzip", gz(""), "not a riposte capture file: no header record", ""},
		{"not json", gz("hello\n"), "the first record is not a riposte-capture header", ""},
		{"other format", gz(`{"record":"header","header":{"format":"pcap","version":1}}` + "\n"), "the first record is not a riposte-capture header", ""},
		{"first not header", gz(`{"record":"event","event":{"type":"exec"}}` + "\n"), "the first record is not a riposte-capture header", ""},
		{"version 2", gz(`{"record":"header","header":{"format":"riposte-capture","version":2}}` + "\n"), "format version 2 is not supported (this riposte reads version 1)", ""},
		{"header only", gz(hdr), "", "capture file is incomplete: it ends after line 1 without a trailer"},
		{"bad json line", gz(hdr + "{nope\n" + trl), "", "capture file line 2: invalid character"},
		{"second header", gz(hdr + hdr + trl), "", "capture file line 2: a second header"},
		{"event without body", gz(hdr + `{"record":"event"}` + "\n" + trl), "", `capture file line 2: event record without its "event" body`},
		{"no kind", gz(hdr + `{"event":{}}` + "\n" + trl), "", `capture file line 2: no "record" kind`},
		{"after trailer", gz(hdr + trl + `{"record":"event","event":{}}` + "\n"), "", "capture file line 3: a record after the trailer"},
		{"wrong type", gz(hdr + `{"record":"event","event":{"pid":"x"}}` + "\n" + trl), "", "capture file line 2: json: cannot unmarshal"},
		{"last line cut", gz(hdr + `{"record":"event","ev`), "", "capture file is incomplete: its last line (2) is cut short"},
		{"bad checksum", corrupt, "", "capture file after line 2: gzip: invalid checksum"},
		{"too long", gz(hdr + `{"record":"x","pad":"` + strings.Repeat("a", MaxRecordBytes) + `"}` + "\n" + trl), "", "capture file line 2: longer than 4194304 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(tt.data))
			if tt.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.openErr) {
					t.Fatalf("NewReader error = %v, want it to contain %q", err, tt.openErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			for {
				_, err = r.Next()
				if err != nil {
					break
				}
			}
			if !strings.Contains(err.Error(), tt.nextErr) {
				t.Fatalf("Next error = %v, want it to contain %q", err, tt.nextErr)
			}
			if _, again := r.Next(); again != err {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

// TestUnknownKindsAndKeys: a reader of this version skips record kinds and
// keys it does not know.
// TestRealCapture reads a capture riposte recorded of a real container
// (the integration test's scenario).
func TestRealCapture(t *testing.T) {
	data, err := os.ReadFile("testdata/docker-exec.jsonl.gz")
	if err != nil {
		t.Fatal(err)
	}
	r, recs, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, rec := range recs {
		kinds[rec.Kind]++
	}
	if h := r.Header(); h.Container.Name != "cap-e2e" || kinds[KindProcess] != 1 || kinds[KindEvent] != 39 || r.Trailer().Events != 39 {
		t.Errorf("header %+v, records %v, trailer %+v", h, kinds, r.Trailer())
	}
}

func TestUnknownKindsAndKeys(t *testing.T) {
	data := gz(hdr + `{"record":"marker","marker":{"x":1}}` + "\n" +
		`{"record":"event","event":{"type":"exec","pid":7,"future_key":true},"future":1}` + "\n" + trl)
	_, recs, err := readAll(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Event.PID != 7 {
		t.Errorf("records = %+v", recs)
	}
}

// TestReserve: a shared cap refuses records with ErrLimit and the file
// stays within it, trailer included when room was kept for it.
func TestReserve(t *testing.T) {
	for _, limit := range []int64{4 << 10, 16 << 10, 64 << 10} {
		t.Run(fmt.Sprint(limit), func(t *testing.T) {
			const trailerRoom = 1024
			used := int64(0)
			opts := WriterOptions{
				FlushEvery: 8 << 10,
				Reserve: func(n int64) bool {
					if used+n > limit-trailerRoom {
						return false
					}
					used += n
					return true
				},
				Release: func(n int64) { used -= n },
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, testHeader(), opts)
			if err != nil {
				t.Fatal(err)
			}
			events := testEvents(50000)
			n := 0
			for i := range events {
				err = w.Event(&events[i])
				if errors.Is(err, ErrLimit) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				n++
			}
			if err == nil {
				t.Fatalf("50000 events fit in %d bytes", limit)
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if used != w.Written() {
				t.Errorf("after a flush the budget says %d bytes used, the file has %d", used, w.Written())
			}
			if err := w.Close(Trailer{Reason: ReasonMaxBytes, Truncated: true}); err != nil {
				t.Fatal(err)
			}
			if int64(buf.Len()) > limit {
				t.Errorf("file is %d bytes, cap %d", buf.Len(), limit)
			}
			if int64(buf.Len()) < limit-trailerRoom-1024 {
				t.Errorf("file is %d bytes, cap %d: the cap is not used", buf.Len(), limit)
			}
			r, recs, err := readAll(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != n || r.Trailer().Events != uint64(n) || !r.Trailer().Truncated {
				t.Errorf("read %d events, wrote %d; trailer %+v", len(recs), n, r.Trailer())
			}
			t.Logf("cap %d: %d events in %d bytes", limit, n, buf.Len())
		})
	}
}

func TestNoHeaderRoom(t *testing.T) {
	_, err := NewWriter(io.Discard, testHeader(), WriterOptions{Reserve: func(int64) bool { return false }})
	if !errors.Is(err, ErrLimit) {
		t.Errorf("err = %v, want ErrLimit", err)
	}
}

// TestFileTreeEventsRoundTrip: the fields of the file-tree, mount and
// namespace events and a failed connect's result survive the file.
func TestFileTreeEventsRoundTrip(t *testing.T) {
	evs := []event.Event{
		{Type: event.Symlink, Syscall: "symlinkat", PID: 1, Comm: "ln", Path: "/tmp/l", Target: "/etc/shadow"},
		{Type: event.Mount, Syscall: "mount", PID: 1, Comm: "mount", Path: "/dev/sda1", Target: "/mnt", FSType: "ext4", Flags: 1, Ret: -1},
		{Type: event.Chmod, Syscall: "fchmod", PID: 1, Comm: "chmod", Path: "sh", FD: 3, Mode: 0o4755},
		{Type: event.Connect, Syscall: "connect", PID: 1, Comm: "nc", Family: "inet", RemoteAddr: "10.0.0.9", RemotePort: 4444, Ret: -111},
	}
	_, recs, err := readAll(writeFile(t, evs, WriterOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Event
	for _, r := range recs {
		if r.Kind == KindEvent {
			got = append(got, *r.Event)
		}
	}
	for i := range got {
		got[i].Time = time.Time{}
	}
	if !reflect.DeepEqual(got, evs) {
		t.Errorf("read back\n%+v\nwant\n%+v", got, evs)
	}
}

// FuzzReader feeds arbitrary bytes to the reader: it must not panic or
// loop, and whatever it accepts must survive a round trip through Writer.
func FuzzReader(f *testing.F) {
	f.Add(writeFile(f, testEvents(3), WriterOptions{}))
	f.Add(gz(hdr + trl))
	f.Add(gz(hdr + `{"record":"event","event":{"type":"connect","remote_addr":"10.0.0.1","remote_port":80}}` + "\n" + trl))
	f.Add([]byte("not gzip"))
	real, err := os.ReadFile("testdata/docker-exec.jsonl.gz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzOne(t, data)
	})
}

// FuzzRecords fuzzes the content under the compression: the harness gzips
// the input, so the fuzzer explores the JSON-lines layer.
func FuzzRecords(f *testing.F) {
	f.Add(hdr + trl)
	f.Add(hdr + `{"record":"process","process":{"pid":1,"args":["sh","-c","x"]}}` + "\n" + `{"record":"socket","socket":{"proto":"tcp"}}` + "\n" + trl)
	f.Add(hdr + `{"record":"event","event":{"type":"exec","args":["a"]}}` + "\n")
	f.Add(hdr + `{"record":"event","event":{"type":"open","path":"/etc/x","flags":577}}` + "\n" + trl)
	f.Add(hdr + `{"record":"event","event":{"type":"symlink","path":"/tmp/l","target":"/etc/shadow"}}` + "\n" +
		`{"record":"event","event":{"type":"mount","path":"/dev/sda1","target":"/mnt","fstype":"ext4","flags":1,"ret":-1}}` + "\n" +
		`{"record":"event","event":{"type":"connect","remote_addr":"10.0.0.1","remote_port":80,"ret":-111}}` + "\n" + trl)
	f.Fuzz(func(t *testing.T, content string) {
		fuzzOne(t, gz(content))
	})
}

func fuzzOne(t *testing.T, data []byte) {
	r, recs, err := readAll(data)
	if r == nil || err != nil {
		return
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, r.Header(), WriterOptions{})
	if err != nil {
		t.Fatalf("rewrite header: %v", err)
	}
	for _, rec := range recs {
		switch rec.Kind {
		case KindProcess:
			err = w.Process(*rec.Process)
		case KindSocket:
			err = w.Socket(*rec.Socket)
		case KindEvent:
			err = w.Event(rec.Event)
		}
		if err != nil {
			t.Fatalf("rewrite %s: %v", rec.Kind, err)
		}
	}
	if err := w.Close(*r.Trailer()); err != nil {
		t.Fatalf("rewrite trailer: %v", err)
	}
	r2, recs2, err := readAll(buf.Bytes())
	if err != nil {
		t.Fatalf("read back: %v", err)
	}
	if !sameJSON(t, r.Header(), r2.Header()) || !sameJSON(t, recs, recs2) {
		t.Fatalf("round trip changed the records:\n%+v\n%+v", recs, recs2)
	}
}

func sameJSON(t *testing.T, a, b any) bool {
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var va, vb any
	json.Unmarshal(ja, &va)
	json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

// BenchmarkWriter measures the recording path alone (JSON encoding and
// gzip) on the events of a real capture: its events/s on one core is the
// ceiling of what a capture can record.
func BenchmarkWriter(b *testing.B) {
	data, err := os.ReadFile("testdata/docker-exec.jsonl.gz")
	if err != nil {
		b.Fatal(err)
	}
	_, recs, err := readAll(data)
	if err != nil {
		b.Fatal(err)
	}
	var events []*event.Event
	for _, rec := range recs {
		if rec.Kind == KindEvent {
			events = append(events, rec.Event)
		}
	}
	var cw countingWriter
	cw.w = io.Discard
	w, err := NewWriter(&cw, testHeader(), WriterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.Event(events[i%len(events)]); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cw.n)/float64(b.N), "B/event")
}
