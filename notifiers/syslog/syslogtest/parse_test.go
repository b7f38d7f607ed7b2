package syslogtest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Examples from RFC 5424 section 6.5 (BOM written out), and others.
const (
	rfcExample1 = "<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8"
	rfcExample3 = `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ` + "\xEF\xBB\xBF" + `An application event log entry...`
	rfcExample4 = `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]`
)

func TestParseRFCExamples(t *testing.T) {
	m, err := Parse([]byte(rfcExample1))
	if err != nil {
		t.Fatal(err)
	}
	if m.Facility != 4 || m.Severity != 2 || m.Hostname != "mymachine.example.com" || m.AppName != "su" ||
		m.ProcID != "-" || m.MsgID != "ID47" || m.StructuredData != nil || !m.BOM ||
		string(m.Msg) != "'su root' failed for lonvick on /dev/pts/8" ||
		!m.Time.Equal(time.Date(2003, 10, 11, 22, 14, 15, 3e6, time.UTC)) {
		t.Errorf("example 1: %+v", m)
	}

	m, err = Parse([]byte(rfcExample3))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := m.Element("exampleSDID@32473")
	if !ok || len(e.Params) != 3 || e.Map()["eventID"] != "1011" || string(m.Msg) != "An application event log entry..." {
		t.Errorf("example 3: %+v", m)
	}

	m, err = Parse([]byte(rfcExample4))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.StructuredData) != 2 || m.Msg != nil || m.StructuredData[1].Params[0] != (Param{"class", "high"}) {
		t.Errorf("example 4: %+v", m)
	}
}

func TestParseEscapes(t *testing.T) {
	m, err := Parse([]byte(`<13>1 - - - - - [x@1 a="q\"b\\s\]e" b="lit\n\x" c="" d="é ✓"]`))
	if err != nil {
		t.Fatal(err)
	}
	e := m.StructuredData[0].Map()
	want := map[string]string{"a": `q"b\s]e`, "b": `lit\n\x`, "c": "", "d": "é ✓"}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("param %s = %q, want %q", k, e[k], v)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name, msg, want string
	}{
		{"empty", "", `want '<'`},
		{"no pri", "1 - - - - - -", `want '<', got '1'`},
		{"pri too big", "<192>1 - - - - - -", "PRIVAL: 192 above 191"},
		{"pri leading zero", "<013>1 - - - - - -", "PRIVAL: want 1 to 3 digits without leading zero"},
		{"pri four digits", "<1234>1 - - - - - -", "PRIVAL: want 1 to 3 digits"},
		{"version 2", "<13>2 - - - - - -", `VERSION: want 1, got "2"`},
		{"rfc3164", "<13>Oct 11 22:14:15 host su: hi", `VERSION: want 1, got ""`},
		{"no timestamp", "<13>1  - - - - -", "TIMESTAMP: empty"},
		{"timestamp no offset", "<13>1 2003-10-11T22:14:15 - - - - -", "TIME-OFFSET"},
		{"timestamp 7 digits", "<13>1 2003-10-11T22:14:15.1234567Z - - - - -", "TIME-SECFRAC"},
		{"timestamp bad month", "<13>1 2003-13-11T22:14:15Z - - - - -", "not a valid date"},
		{"timestamp lowercase t", "<13>1 2003-10-11t22:14:15Z - - - - -", "want YYYY-MM-DDThh:mm:ss"},
		{"hostname control", "<13>1 - ho\x01st - - - -", "HOSTNAME: byte 0x01"},
		{"app name too long", "<13>1 - - " + strings.Repeat("a", 49) + " - - -", "APP-NAME: 49 characters, at most 48"},
		{"msgid too long", "<13>1 - - - - " + strings.Repeat("m", 33) + " -", "MSGID: 33 characters"},
		{"missing sd", "<13>1 - - - - -", "want ' ', got end"},
		{"sd not bracket", "<13>1 - - - - - x", "STRUCTURED-DATA: want '-' or '['"},
		{"sd dash glued", "<13>1 - - - - - -x", "'-' must be followed by a space"},
		{"sd unterminated", `<13>1 - - - - - [x@1 a="b"`, `want ']', got end`},
		{"sd value unterminated", `<13>1 - - - - - [x@1 a="b]`, "unescaped ']'"},
		{"sd unescaped bracket", `<13>1 - - - - - [x@1 a="b]"]`, "unescaped ']'"},
		{"sd no quote", `<13>1 - - - - - [x@1 a=b]`, `want '"'`},
		{"sd empty id", `<13>1 - - - - - []`, "SD-ID: empty"},
		{"sd id too long", "<13>1 - - - - - [" + strings.Repeat("i", 33) + "]", "SD-ID: 33 characters"},
		{"sd duplicate id", `<13>1 - - - - - [x@1][x@1]`, `SD-ID "x@1" appears twice`},
		{"sd bad utf8", "<13>1 - - - - - [x@1 a=\"\xff\"]", "not valid UTF-8"},
		{"sd space before bracket", `<13>1 - - - - - [x@1 a="b" ]`, "PARAM-NAME: empty"},
		{"no space before msg", `<13>1 - - - - - [x@1]msg`, `want ' ', got 'm'`},
		{"bom then bad utf8", "<13>1 - - - - - - \xEF\xBB\xBF\xff", "MSG: starts with a BOM but is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.msg))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.msg, err, tt.want)
			}
		})
	}
}

func TestReadFrame(t *testing.T) {
	tests := []struct {
		name, in string
		frames   []string
		err      string
	}{
		{"two frames", "3 abc5 hello", []string{"abc", "hello"}, "EOF"},
		{"frame with newline and spaces", "7 a b\nc d", []string{"a b\nc d"}, "EOF"},
		{"empty stream", "", nil, "EOF"},
		{"torn length", "12", nil, "unexpected EOF"},
		{"torn body", "10 abc", nil, "read frame of 10 bytes: unexpected EOF"},
		{"leading zero", "03 abc", nil, "MSG-LEN starts with 0"},
		{"zero", "0 ", nil, "MSG-LEN starts with 0"},
		{"non transparent", "<13>1 - - - - - -\n", nil, `MSG-LEN: unexpected byte '<'`},
		{"no length", " abc", nil, "MSG-LEN missing"},
		{"too long", "99999999 x", nil, "MSG-LEN above"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bufio.NewReader(strings.NewReader(tt.in))
			var got []string
			var err error
			for {
				var f []byte
				if f, err = ReadFrame(r); err != nil {
					break
				}
				got = append(got, string(f))
			}
			if strings.Join(got, "|") != strings.Join(tt.frames, "|") {
				t.Errorf("frames = %q, want %q", got, tt.frames)
			}
			if err.Error() != tt.err && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error = %v, want %q", err, tt.err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{rfcExample1, rfcExample3, rfcExample4, `<13>1 - - - - - [x@1 a="q\"b\\s\]e"]`,
		"<0>1 2024-01-01T00:00:00.000001+01:00 h a p m - msg", "<191>1 - - - - - -"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if m.Facility*8+m.Severity > 191 || m.Version != 1 || !bytes.Equal(m.Raw, b) {
			t.Fatalf("parsed %q into %+v", b, m)
		}
		for _, s := range []string{m.Hostname, m.AppName, m.ProcID, m.MsgID, m.Timestamp} {
			if s == "" || strings.ContainsAny(s, " \x00") {
				t.Fatalf("header field %q from %q", s, b)
			}
		}
		ids := map[string]bool{}
		for _, e := range m.StructuredData {
			if ids[e.ID] {
				t.Fatalf("duplicate SD-ID accepted in %q", b)
			}
			ids[e.ID] = true
			for _, p := range e.Params {
				if !utf8.ValidString(p.Value) || p.Name == "" || len(p.Name) > 32 {
					t.Fatalf("param %+v from %q", p, b)
				}
			}
		}
		if m.BOM && !utf8.Valid(m.Msg) {
			t.Fatalf("BOM message with invalid UTF-8 accepted: %q", b)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	for _, s := range []string{"3 abc5 hello", "12", "03 abc", "1 x1 y1 z"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		total := 0
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				if errors.Is(err, io.EOF) && total != len(b) {
					t.Fatalf("clean EOF after %d of %d bytes", total, len(b))
				}
				return
			}
			if len(fr) == 0 || len(fr) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(fr))
			}
			total += digits(len(fr)) + 1 + len(fr)
		}
	})
}

func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}
