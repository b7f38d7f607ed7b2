package syslogtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message is one parsed RFC 5424 message. Header fields hold the text as
// sent, "-" (NILVALUE) included.
type Message struct {
	Facility  int
	Severity  int
	Version   int
	Timestamp string
	// Time is Timestamp parsed; zero for "-".
	Time     time.Time
	Hostname string
	AppName  string
	ProcID   string
	MsgID    string
	// StructuredData is nil for "-".
	StructuredData []Element
	// BOM: MSG started with the UTF-8 byte order mark (then it must be,
	// and was checked to be, valid UTF-8).
	BOM bool
	// Msg is MSG without the BOM; nil when the message has none.
	Msg []byte
	// Raw is the whole message as received (without framing).
	Raw []byte
}

// Element is one SD-ELEMENT.
type Element struct {
	ID     string
	Params []Param
}

// Param is one SD-PARAM; Value is unescaped.
type Param struct {
	Name  string
	Value string
}

// Element returns the SD-ELEMENT with that SD-ID.
func (m Message) Element(id string) (Element, bool) {
	for _, e := range m.StructuredData {
		if e.ID == id {
			return e, true
		}
	}
	return Element{}, false
}

// Get returns the value of the first param called name.
func (e Element) Get(name string) (string, bool) {
	for _, p := range e.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// Map returns the params as a map (the last of repeated names wins).
func (e Element) Map() map[string]string {
	m := make(map[string]string, len(e.Params))
	for _, p := range e.Params {
		m[p.Name] = p.Value
	}
	return m
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// Parse parses one RFC 5424 message strictly: every production of the
// section 6 ABNF is checked, and so are the rules stated in prose (PRIVAL at
// most 191 without leading zeros, VERSION 1, a real date and time with at
// most six fraction digits, SD-IDs unique within a message, '"', '\' and ']'
// escaped in PARAM-VALUE, which must be UTF-8, and MSG valid UTF-8 when it
// starts with a BOM). A backslash before any other character is kept as a
// literal backslash, as section 6.3.3 requires.
func Parse(b []byte) (Message, error) {
	p := parser{b: b}
	m, err := p.message()
	if err != nil {
		return Message{}, fmt.Errorf("parse syslog message: at byte %d: %w", p.i, err)
	}
	m.Raw = b
	return m, nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.b) }

func (p *parser) expect(c byte) error {
	if p.eof() {
		return fmt.Errorf("want %q, got end of message", c)
	}
	if p.b[p.i] != c {
		return fmt.Errorf("want %q, got %q", c, p.b[p.i])
	}
	p.i++
	return nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// printUSASCII is PRINTUSASCII: %d33-126.
func printUSASCII(c byte) bool { return c >= 33 && c <= 126 }

func (p *parser) message() (Message, error) {
	var m Message
	if err := p.expect('<'); err != nil {
		return m, err
	}
	start := p.i
	for !p.eof() && isDigit(p.b[p.i]) && p.i-start < 4 {
		p.i++
	}
	digits := string(p.b[start:p.i])
	if len(digits) == 0 || len(digits) > 3 || (len(digits) > 1 && digits[0] == '0') {
		return m, fmt.Errorf("PRIVAL: want 1 to 3 digits without leading zero, got %q", digits)
	}
	pri, _ := strconv.Atoi(digits)
	if pri > 191 {
		return m, fmt.Errorf("PRIVAL: %d above 191", pri)
	}
	m.Facility, m.Severity = pri/8, pri%8
	if err := p.expect('>'); err != nil {
		return m, err
	}
	start = p.i
	for !p.eof() && isDigit(p.b[p.i]) {
		p.i++
	}
	if v := string(p.b[start:p.i]); v != "1" {
		return m, fmt.Errorf("VERSION: want 1, got %q", v)
	}
	m.Version = 1
	if err := p.expect(' '); err != nil {
		return m, err
	}
	ts, err := p.field("TIMESTAMP", 64)
	if err != nil {
		return m, err
	}
	m.Timestamp = ts
	if ts != "-" {
		if m.Time, err = parseTimestamp(ts); err != nil {
			return m, err
		}
	}
	for _, f := range []struct {
		name string
		max  int
		dst  *string
	}{{"HOSTNAME", 255, &m.Hostname}, {"APP-NAME", 48, &m.AppName}, {"PROCID", 128, &m.ProcID}, {"MSGID", 32, &m.MsgID}} {
		if err := p.expect(' '); err != nil {
			return m, err
		}
		if *f.dst, err = p.field(f.name, f.max); err != nil {
			return m, err
		}
	}
	if err := p.expect(' '); err != nil {
		return m, err
	}
	if m.StructuredData, err = p.structuredData(); err != nil {
		return m, err
	}
	if p.eof() {
		return m, nil
	}
	if err := p.expect(' '); err != nil {
		return m, err
	}
	msg := p.b[p.i:]
	p.i = len(p.b)
	if bytes.HasPrefix(msg, bom) {
		m.BOM = true
		msg = msg[len(bom):]
		if !utf8.Valid(msg) {
			return m, errors.New("MSG: starts with a BOM but is not valid UTF-8")
		}
	}
	m.Msg = msg
	return m, nil
}

// field reads 1*max PRINTUSASCII up to the next space or the end.
func (p *parser) field(name string, max int) (string, error) {
	start := p.i
	for !p.eof() && p.b[p.i] != ' ' {
		if !printUSASCII(p.b[p.i]) {
			return "", fmt.Errorf("%s: byte %#02x is not printable US-ASCII", name, p.b[p.i])
		}
		p.i++
	}
	n := p.i - start
	if n == 0 {
		return "", fmt.Errorf("%s: empty", name)
	}
	if n > max {
		return "", fmt.Errorf("%s: %d characters, at most %d allowed", name, n, max)
	}
	return string(p.b[start:p.i]), nil
}

// parseTimestamp checks FULL-DATE "T" FULL-TIME character by character (the
// time package accepts more than the RFC), then the calendar.
func parseTimestamp(ts string) (time.Time, error) {
	bad := func(why string) (time.Time, error) {
		return time.Time{}, fmt.Errorf("TIMESTAMP %q: %s", ts, why)
	}
	shape := "DDDD-DD-DDTDD:DD:DD"
	if len(ts) < len(shape) {
		return bad("too short")
	}
	for i := 0; i < len(shape); i++ {
		if (shape[i] == 'D' && !isDigit(ts[i])) || (shape[i] != 'D' && ts[i] != shape[i]) {
			return bad("want YYYY-MM-DDThh:mm:ss")
		}
	}
	rest := ts[len(shape):]
	if rest != "" && rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 7 {
			return bad("TIME-SECFRAC must have 1 to 6 digits")
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && isDigit(rest[1]) && isDigit(rest[2]) &&
		rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5]):
	default:
		return bad("TIME-OFFSET must be Z or +hh:mm / -hh:mm")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return bad("not a valid date and time")
	}
	return t, nil
}

func (p *parser) structuredData() ([]Element, error) {
	if !p.eof() && p.b[p.i] == '-' {
		p.i++
		if !p.eof() && p.b[p.i] != ' ' {
			return nil, errors.New("STRUCTURED-DATA: '-' must be followed by a space or the end")
		}
		return nil, nil
	}
	if p.eof() || p.b[p.i] != '[' {
		return nil, errors.New("STRUCTURED-DATA: want '-' or '['")
	}
	var out []Element
	seen := map[string]bool{}
	for !p.eof() && p.b[p.i] == '[' {
		p.i++
		id, err := p.sdName("SD-ID")
		if err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("SD-ID %q appears twice", id)
		}
		seen[id] = true
		e := Element{ID: id}
		for !p.eof() && p.b[p.i] == ' ' {
			p.i++
			name, err := p.sdName("PARAM-NAME")
			if err != nil {
				return nil, err
			}
			if err := p.expect('='); err != nil {
				return nil, err
			}
			if err := p.expect('"'); err != nil {
				return nil, err
			}
			v, err := p.paramValue()
			if err != nil {
				return nil, fmt.Errorf("PARAM-VALUE of %s: %w", name, err)
			}
			e.Params = append(e.Params, Param{Name: name, Value: v})
		}
		if err := p.expect(']'); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// sdName reads SD-NAME: 1*32 PRINTUSASCII except '=', SP, ']' and '"'.
func (p *parser) sdName(what string) (string, error) {
	start := p.i
	for !p.eof() {
		c := p.b[p.i]
		if !printUSASCII(c) || c == '=' || c == ']' || c == '"' {
			break
		}
		p.i++
	}
	n := p.i - start
	if n == 0 {
		return "", fmt.Errorf("%s: empty", what)
	}
	if n > 32 {
		return "", fmt.Errorf("%s: %d characters, at most 32 allowed", what, n)
	}
	return string(p.b[start:p.i]), nil
}

// paramValue reads up to the closing quote, unescaping.
func (p *parser) paramValue() (string, error) {
	var v []byte
	start := p.i
	for {
		if p.eof() {
			return "", errors.New("no closing quote")
		}
		c := p.b[p.i]
		switch c {
		case '"':
			p.i++
			if !utf8.Valid(v) {
				return "", errors.New("not valid UTF-8")
			}
			return string(v), nil
		case ']':
			return "", errors.New("unescaped ']'")
		case '\\':
			if p.i+1 < len(p.b) {
				if n := p.b[p.i+1]; n == '"' || n == '\\' || n == ']' {
					v = append(v, n)
					p.i += 2
					continue
				}
			}
			// Section 6.3.3: any other escape is a literal backslash.
			v = append(v, c)
			p.i++
		default:
			v = append(v, c)
			p.i++
		}
		if len(v) > 1<<20 || p.i-start > 2<<20 {
			return "", errors.New("longer than 1 MiB")
		}
	}
}

// MaxFrame bounds MSG-LEN in ReadFrame.
const MaxFrame = 1 << 20

// ReadFrame reads one octet-counted frame (RFC 6587 section 3.4.1):
// MSG-LEN SP SYSLOG-MSG, MSG-LEN a decimal without leading zero. It returns
// io.EOF at a clean end between frames and io.ErrUnexpectedEOF inside one.
// Anything else (non-transparent framing, a leading zero, a length above
// MaxFrame) is an error: this reader is strict on purpose.
func ReadFrame(r *bufio.Reader) ([]byte, error) {
	n := 0
	digits := 0
	for {
		c, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if c == ' ' {
			if digits == 0 {
				return nil, errors.New("read frame: MSG-LEN missing")
			}
			break
		}
		if !isDigit(c) {
			return nil, fmt.Errorf("read frame: MSG-LEN: unexpected byte %q", c)
		}
		if digits == 0 && c == '0' {
			return nil, errors.New("read frame: MSG-LEN starts with 0")
		}
		n = n*10 + int(c-'0')
		digits++
		if n > MaxFrame {
			return nil, fmt.Errorf("read frame: MSG-LEN above %d", MaxFrame)
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("read frame of %d bytes: %w", n, err)
	}
	return buf, nil
}
