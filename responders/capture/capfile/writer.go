package capfile

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/riposte-sec/riposte/detector/event"
)

// ErrLimit is returned by a Writer whose Reserve hook refused a record: the
// capture's size cap is reached. Nothing of the record was written.
var ErrLimit = errors.New("capture size cap reached")

// WriterOptions tune a Writer. The zero value is valid.
type WriterOptions struct {
	// Level is the gzip compression level; 0 means gzip.BestSpeed.
	Level int
	// FlushEvery flushes the gzip stream after this many uncompressed
	// bytes, so that a reader (or a crash) finds everything up to the last
	// flush; 0 means 256KiB. Flush also flushes.
	FlushEvery int
	// Reserve, when set, is asked before every record for an upper bound
	// of the bytes the record adds to the file; false refuses the record
	// with ErrLimit. The Writer flushes once and asks again before
	// refusing, so reservations that turned out too large are returned
	// first.
	Reserve func(n int64) bool
	// Release returns bytes reserved but not used: at every flush the
	// compressed size of what was written since the last one is known.
	Release func(n int64)
}

// worstCase bounds the compressed size of n uncompressed bytes: deflate's
// stored blocks add 5 bytes per 64KiB, a sync flush adds 5.
func worstCase(n int) int64 { return int64(n + 5*(n/65535+1) + 5) }

// gzipOverhead is the gzip header and footer.
const gzipOverhead = 10 + 8

// Writer writes one capture file: the header when created, then records,
// then the trailer on Close. It is not safe for concurrent use.
type Writer struct {
	dst      countingWriter
	gz       *gzip.Writer
	buf      bytes.Buffer
	enc      *json.Encoder
	opts     WriterOptions
	pending  int   // uncompressed bytes since the last flush
	reserved int64 // bytes reserved since the last flush
	mark     int64 // dst.n at the last flush
	events   uint64
	closed   bool
}

// NewWriter starts a capture file on w with header h (Format and Version
// are filled in) and flushes it. The caller closes w after Close.
func NewWriter(w io.Writer, h Header, opts WriterOptions) (*Writer, error) {
	if opts.Level == 0 {
		opts.Level = gzip.BestSpeed
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = 256 << 10
	}
	cw := &Writer{dst: countingWriter{w: w}, opts: opts}
	gz, err := gzip.NewWriterLevel(&cw.dst, opts.Level)
	if err != nil {
		return nil, fmt.Errorf("start capture file: %w", err)
	}
	gz.Name = "capture.jsonl"
	gz.ModTime = h.Started
	cw.gz = gz
	cw.enc = json.NewEncoder(&cw.buf)
	cw.enc.SetEscapeHTML(false)
	h.Format, h.Version = Format, Version
	if !cw.reserve(gzipOverhead) {
		return nil, fmt.Errorf("start capture file: %w", ErrLimit)
	}
	if err := cw.write(Record{Kind: KindHeader, Header: &h}); err != nil {
		return nil, fmt.Errorf("start capture file: %w", err)
	}
	if err := cw.Flush(); err != nil {
		return nil, fmt.Errorf("start capture file: %w", err)
	}
	return cw, nil
}

// Process writes a process record of the state header.
func (w *Writer) Process(p Process) error {
	return w.write(Record{Kind: KindProcess, Process: &p})
}

// Socket writes a socket record of the state header.
func (w *Writer) Socket(s Socket) error {
	return w.write(Record{Kind: KindSocket, Socket: &s})
}

// Event writes an event record.
func (w *Writer) Event(ev *event.Event) error {
	if err := w.write(Record{Kind: KindEvent, Event: ev}); err != nil {
		return err
	}
	w.events++
	return nil
}

// Events is the number of event records written.
func (w *Writer) Events() uint64 { return w.events }

// Written is the number of bytes written to the underlying writer so far.
func (w *Writer) Written() int64 { return w.dst.n }

// Flush flushes the gzip stream: everything written so far can be read
// back from the underlying writer.
func (w *Writer) Flush() error {
	if w.closed {
		return errors.New("flush capture file: closed")
	}
	if w.pending == 0 {
		return nil // a sync flush of nothing would still add 5 bytes
	}
	if err := w.gz.Flush(); err != nil {
		return fmt.Errorf("flush capture file: %w", err)
	}
	w.settle()
	return nil
}

// settle returns what was reserved and not used since the last flush.
func (w *Writer) settle() {
	used := w.dst.n - w.mark
	if extra := w.reserved - used; extra > 0 && w.opts.Release != nil {
		w.opts.Release(extra)
	}
	w.mark, w.reserved, w.pending = w.dst.n, 0, 0
}

// Close writes the trailer (Events filled in) and ends the gzip stream. The
// trailer is written without asking Reserve: keep room for it. Close does
// not close the underlying writer.
func (w *Writer) Close(t Trailer) error {
	if w.closed {
		return errors.New("close capture file: already closed")
	}
	t.Events = w.events
	reserve := w.opts.Reserve
	w.opts.Reserve = nil
	err := w.write(Record{Kind: KindTrailer, Trailer: &t})
	w.opts.Reserve = reserve
	if err != nil {
		return fmt.Errorf("close capture file: %w", err)
	}
	w.closed = true
	if err := w.gz.Close(); err != nil {
		return fmt.Errorf("close capture file: %w", err)
	}
	w.settle()
	return nil
}

func (w *Writer) reserve(n int64) bool {
	if w.opts.Reserve == nil {
		return true
	}
	if w.opts.Reserve(n) {
		w.reserved += n
		return true
	}
	return false
}

func (w *Writer) write(rec Record) error {
	if w.closed {
		return errors.New("write capture record: file closed")
	}
	w.buf.Reset()
	if err := w.enc.Encode(rec); err != nil {
		return fmt.Errorf("encode %s record: %w", rec.Kind, err)
	}
	if w.buf.Len()-1 > MaxRecordBytes {
		return fmt.Errorf("encode %s record: %d bytes, more than the %d a record may have", rec.Kind, w.buf.Len()-1, MaxRecordBytes)
	}
	need := worstCase(w.buf.Len())
	if !w.reserve(need) {
		// Reservations are pessimistic until a flush settles them.
		if err := w.Flush(); err != nil {
			return err
		}
		if !w.reserve(need) {
			return ErrLimit
		}
	}
	if _, err := w.gz.Write(w.buf.Bytes()); err != nil {
		return fmt.Errorf("write %s record: %w", rec.Kind, err)
	}
	w.pending += w.buf.Len()
	if w.pending >= w.opts.FlushEvery {
		return w.Flush()
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
