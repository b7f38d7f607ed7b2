package syslog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/notifiers/stream"
)

// Deps are the output's collaborators; every field is optional.
type Deps struct {
	// Logger; nil discards.
	Logger *slog.Logger
	// Hostname is used when the config sets none; nil: os.Hostname.
	Hostname func() (string, error)
	// PID is PROCID; 0: os.Getpid().
	PID int
}

// Syslog sends records to one syslog receiver. It is safe for concurrent
// use; writes are serialised on one connection.
type Syslog struct {
	cfg      Config
	log      *slog.Logger
	hostname string
	procID   string
	bom      bool
	max      int
	dialer   net.Dialer

	mu     sync.Mutex
	conn   net.Conn
	closed bool
}

var _ stream.Output = (*Syslog)(nil)

// New validates cfg. It does not connect: the first Write does, so that a
// receiver that is down at start delays records instead of riposte.
func New(cfg Config, deps Deps) (*Syslog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Syslog{cfg: cfg, log: deps.Logger, bom: *cfg.BOM, max: int(cfg.MaxMessageSize), dialer: net.Dialer{Timeout: cfg.Timeout}}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.hostname = cfg.Hostname
	if s.hostname == "" {
		get := deps.Hostname
		if get == nil {
			get = os.Hostname
		}
		h, err := get()
		if err != nil {
			s.log.Warn("syslog: no host name, sending NILVALUE", "error", err)
		}
		s.hostname = headerField(h, 255)
	}
	pid := deps.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	s.procID = strconv.Itoa(pid)
	return s, nil
}

// Severity maps a Falco priority to a syslog severity: Emergency 0, Alert 1,
// Critical 2, Error 3, Warning 4, Notice 5, Informational 6, Debug 7.
func Severity(p alert.Priority) int { return int(alert.PriorityEmergency - p) }

// Write sends one record as one RFC 5424 message. Failures to connect or to
// send are retryable; a record that cannot be formatted is not. After a
// failure the connection is dropped and the next Write dials again; a
// connection found closed by the receiver (it restarted) is replaced before
// the record is sent.
func (s *Syslog) Write(ctx context.Context, r stream.Record) error {
	msg, err := s.Format(r)
	if err != nil {
		return fmt.Errorf("write syslog record %s: %w", r.Key(), err)
	}
	frame := msg
	if s.cfg.stream() {
		switch s.cfg.Framing {
		case OctetCounting:
			frame = append([]byte(strconv.Itoa(len(msg))+" "), msg...)
		case NonTransparent:
			frame = append(msg, '\n')
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return actions.Retryable(fmt.Errorf("write syslog record %s: output closed", r.Key()))
	}
	for {
		conn, fresh, err := s.connect(ctx)
		if err != nil {
			return actions.Retryable(fmt.Errorf("write syslog record %s: %w", r.Key(), err))
		}
		err = s.send(ctx, conn, frame)
		if err == nil {
			return nil
		}
		s.drop()
		if fresh || ctx.Err() != nil {
			return actions.Retryable(fmt.Errorf("write syslog record %s: send to %s %s: %w", r.Key(), s.cfg.Network, s.cfg.Address, err))
		}
		// The connection we kept failed: the receiver may have restarted
		// since the last record. Try once on a new connection.
		s.log.Info("syslog connection failed, reconnecting", "network", s.cfg.Network, "address", s.cfg.Address, "error", err)
	}
}

// connect returns the open connection, or a new one (fresh).
func (s *Syslog) connect(ctx context.Context) (net.Conn, bool, error) {
	if s.conn != nil {
		if s.cfg.stream() && !alive(s.conn) {
			s.log.Info("syslog receiver closed the connection, reconnecting", "network", s.cfg.Network, "address", s.cfg.Address)
			s.drop()
		} else {
			return s.conn, false, nil
		}
	}
	c, err := s.dialer.DialContext(ctx, s.cfg.Network, s.cfg.Address)
	if err != nil {
		return nil, false, fmt.Errorf("dial %s %s: %w", s.cfg.Network, s.cfg.Address, err)
	}
	s.conn = c
	return c, true, nil
}

func (s *Syslog) send(ctx context.Context, c net.Conn, frame []byte) error {
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := c.SetWriteDeadline(deadline); err != nil {
		return err
	}
	// Cancelling ctx interrupts a blocked write.
	stop := context.AfterFunc(ctx, func() { c.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	for len(frame) > 0 {
		n, err := c.Write(frame)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		frame = frame[n:]
	}
	return nil
}

func (s *Syslog) drop() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection; later Writes fail (retryably: a message an
// outbox worker was delivering during shutdown goes out after restart).
func (s *Syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return fmt.Errorf("close syslog connection: %w", err)
	}
	return nil
}

// maxParam bounds one structured-data value (before escaping); the full
// value is in the JSON.
const maxParam = 256

// Format renders r as one RFC 5424 message (without transport framing):
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD-ID id= kind= priority= rule= …] BOM JSON
//
// PRI is facility*8 + Severity(priority); TIMESTAMP is the record's time in
// UTC with microseconds, so that a retried record is the same message;
// MSGID is the record type ("alert", "action.succeeded"). The structured
// data element carries id (the stable record id), kind, priority, rule,
// container_id, container_name, container_image, incident, alert_id and
// host (the alert's host), those that are set, each at most 256 bytes,
// with control characters replaced by spaces, invalid UTF-8 replaced by
// U+FFFD, and '"', '\' and ']' escaped. When the message would exceed
// max_message_size, the JSON is cut at a character boundary and the element
// says truncated="<JSON length>".
func (s *Syslog) Format(r stream.Record) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	ts := "-"
	if !r.Time.IsZero() {
		ts = r.Time.UTC().Format("2006-01-02T15:04:05.000000Z")
	}
	header := fmt.Sprintf("<%d>1 %s %s %s %s %s ", int(s.cfg.Facility)*8+Severity(r.Priority), ts,
		s.hostname, s.cfg.AppName, s.procID, headerField(r.Type, 32))
	params := [][2]string{
		{"id", r.ID}, {"kind", string(r.Kind)}, {"priority", r.Priority.String()}, {"rule", r.Rule},
		{"container_id", r.ContainerID}, {"container_name", r.ContainerName}, {"container_image", r.ContainerImage},
		{"incident", r.Incident}, {"alert_id", r.AlertID}, {"host", r.Hostname},
	}
	body := r.JSON
	var bomb []byte
	if s.bom {
		bomb = []byte("\xEF\xBB\xBF")
	}
	sd := structuredData(s.cfg.SDID, params)
	size := len(header) + len(sd) + 1 + len(bomb) + len(body)
	if size > s.max {
		sd = structuredData(s.cfg.SDID, append(params, [2]string{"truncated", strconv.Itoa(len(body))}))
		room := s.max - len(header) - len(sd) - 1 - len(bomb)
		if room < 0 {
			return nil, fmt.Errorf("header and structured data take %d bytes, above max_message_size %d", len(header)+len(sd), s.max)
		}
		n := room
		for n > 0 && !utf8.RuneStart(body[n]) {
			n--
		}
		body = body[:n]
	}
	out := make([]byte, 0, len(header)+len(sd)+1+len(bomb)+len(body))
	out = append(out, header...)
	out = append(out, sd...)
	out = append(out, ' ')
	out = append(out, bomb...)
	out = append(out, body...)
	return out, nil
}

func structuredData(id string, params [][2]string) string {
	var b strings.Builder
	b.WriteByte('[')
	b.WriteString(id)
	for _, p := range params {
		if p[1] == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(p[0])
		b.WriteString(`="`)
		b.WriteString(escapeParam(p[1]))
		b.WriteByte('"')
	}
	b.WriteByte(']')
	return b.String()
}

// ParamValue is what a structured data value becomes before escaping:
// invalid UTF-8 replaced by U+FFFD, control characters by spaces, cut to
// 256 bytes at a character boundary. Receivers see exactly this after
// unescaping.
func ParamValue(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > maxParam {
		n := maxParam
		for n > 0 && !utf8.RuneStart(v[n]) {
			n--
		}
		v = v[:n]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v)
}

// escapeParam escapes '"', '\' and ']' (RFC 5424 section 6.3.3).
func escapeParam(v string) string {
	v = ParamValue(v)
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '"', '\\', ']':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// headerField makes s a header field: printable US-ASCII (others become
// '_'), at most max bytes, "-" when empty.
func headerField(s string, max int) string {
	if s == "" {
		return "-"
	}
	b := []byte(s)
	if len(b) > max {
		b = b[:max]
	}
	for i, c := range b {
		if c < 33 || c > 126 {
			b[i] = '_'
		}
	}
	return string(b)
}
