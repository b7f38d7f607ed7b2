package capfile

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrIncomplete is returned (wrapped) by Reader.Next when the file ends
// without a trailer: riposte stopped, or the file was cut, while the
// capture was being written. Every record before that point was returned.
var ErrIncomplete = errors.New("capture file is incomplete")

// Reader reads a capture file record by record. It is not safe for
// concurrent use.
type Reader struct {
	gz      *gzip.Reader
	br      *bufio.Reader
	header  Header
	trailer *Trailer
	line    int // lines read so far
	err     error
}

// NewReader reads the header of the capture file r. It fails when r is not
// a gzip stream, does not start with a header record, or is of another
// format version.
func NewReader(r io.Reader) (*Reader, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("not a riposte capture file (%w)", err)
	}
	gz.Multistream(false)
	cr := &Reader{gz: gz, br: bufio.NewReaderSize(gz, 64<<10)}
	line, err := cr.readLine()
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, ErrIncomplete) {
			return nil, errors.New("not a riposte capture file: no header record")
		}
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil || rec.Kind != KindHeader || rec.Header == nil || rec.Header.Format != Format {
		return nil, errors.New("not a riposte capture file: the first record is not a riposte-capture header")
	}
	if rec.Header.Version != Version {
		return nil, fmt.Errorf("capture file format version %d is not supported (this riposte reads version %d)", rec.Header.Version, Version)
	}
	cr.header = *rec.Header
	return cr, nil
}

// Open opens the capture file at path. Close the returned file after use.
func Open(path string) (*Reader, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open capture file: %w", err)
	}
	r, err := NewReader(bufio.NewReaderSize(f, 256<<10))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	return r, f, nil
}

// Header is the file's header record.
func (r *Reader) Header() Header { return r.header }

// Trailer is the file's trailer once Next has returned io.EOF; nil before,
// and nil for an incomplete file.
func (r *Reader) Trailer() *Trailer { return r.trailer }

// Next returns the next process, socket or event record. It returns io.EOF
// after the trailer, an error wrapping ErrIncomplete when the file ends
// without one, and an error naming the line for anything malformed.
// Records of kinds this version does not know are skipped (a later
// version may add kinds without changing Version). Errors are sticky.
func (r *Reader) Next() (Record, error) {
	if r.err != nil {
		return Record{}, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (Record, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if r.trailer == nil {
					return Record{}, fmt.Errorf("%w: it ends after line %d without a trailer (riposte stopped while writing it?)", ErrIncomplete, r.line)
				}
				return Record{}, io.EOF
			}
			return Record{}, err
		}
		if r.trailer != nil {
			return Record{}, fmt.Errorf("capture file line %d: a record after the trailer", r.line)
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return Record{}, fmt.Errorf("capture file line %d: %w", r.line, err)
		}
		// Only the body the kind names counts; others are ignored.
		var missing bool
		out := Record{Kind: rec.Kind}
		switch rec.Kind {
		case KindHeader:
			return Record{}, fmt.Errorf("capture file line %d: a second header", r.line)
		case KindProcess:
			out.Process, missing = rec.Process, rec.Process == nil
		case KindSocket:
			out.Socket, missing = rec.Socket, rec.Socket == nil
		case KindEvent:
			out.Event, missing = rec.Event, rec.Event == nil
		case KindTrailer:
			if rec.Trailer == nil {
				missing = true
				break
			}
			r.trailer = rec.Trailer
			continue
		case "":
			return Record{}, fmt.Errorf("capture file line %d: no \"record\" kind", r.line)
		default:
			continue
		}
		if missing {
			return Record{}, fmt.Errorf("capture file line %d: %s record without its %q body", r.line, rec.Kind, rec.Kind)
		}
		return out, nil
	}
}

// readLine returns the next line without its newline. A clean end of the
// stream is io.EOF; a stream cut short (no gzip footer, or a last line
// without its newline) is ErrIncomplete; corrupt compressed data is an
// error of its own.
func (r *Reader) readLine() ([]byte, error) {
	var acc []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if len(acc)+len(chunk) > MaxRecordBytes+1 {
			return nil, fmt.Errorf("capture file line %d: longer than %d bytes", r.line+1, MaxRecordBytes)
		}
		switch {
		case err == nil:
			r.line++
			if acc != nil {
				acc = append(acc, chunk...)
				return bytes.TrimSuffix(acc, []byte{'\n'}), nil
			}
			return chunk[:len(chunk)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			acc = append(acc, chunk...)
		case errors.Is(err, io.EOF):
			if len(acc)+len(chunk) > 0 {
				return nil, fmt.Errorf("%w: its last line (%d) is cut short", ErrIncomplete, r.line+1)
			}
			return nil, io.EOF
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%w: the compressed stream is cut short after line %d", ErrIncomplete, r.line)
		default:
			return nil, fmt.Errorf("capture file after line %d: %w", r.line, err)
		}
	}
}
