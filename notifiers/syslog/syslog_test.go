package syslog

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/riposte-sec/riposte/internal/actions"
	"github.com/riposte-sec/riposte/internal/alert"
	"github.com/riposte-sec/riposte/internal/store"
	"github.com/riposte-sec/riposte/internal/testutil"
	"github.com/riposte-sec/riposte/notifiers/stream"
	"github.com/riposte-sec/riposte/notifiers/syslog/syslogtest"
)

const testPID = 4242

func testAlert() alert.Alert {
	return alert.Alert{
		ID:       "6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41",
		Time:     time.Date(2026, 11, 20, 9, 14, 3, 512348123, time.UTC),
		Rule:     `Terminal "shell" in [container] \ é`,
		Priority: alert.PriorityNotice,
		Output:   "A shell was spawned ($(id); `uname` | & \\ \" ' ]) ✓",
		OutputFields: map[string]any{
			"container.id": "3f9a1c2b7d4e", "container.name": "payments]api",
			"container.image.repository": "registry.local/payments", "container.image.tag": "1.4",
		},
		Source: "syscall", Tags: []string{"container"}, Hostname: "node-3",
	}
}

func alertRecord(t testing.TB, a alert.Alert) stream.Record {
	t.Helper()
	r, err := stream.FromAlert(a, "inc-20261120-1")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func journalRecord(t testing.TB) stream.Record {
	t.Helper()
	a := testAlert()
	e := store.Entry{Seq: 17, Time: time.Date(2026, 11, 20, 9, 14, 4, 0, time.UTC), Type: store.ActionFailed,
		AlertID: a.ID, Playbook: "contain", Action: "container.pause", Actor: "riposte",
		Detail: map[string]any{"error": "pause: daemon unreachable"}, PrevHash: "aa", Hash: "bb"}
	r, err := stream.FromEntry(e, &a, "inc-20261120-1")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newSyslog(t testing.TB, cfg Config) *Syslog {
	t.Helper()
	s, err := New(cfg, Deps{PID: testPID, Hostname: func() (string, error) { return "riposte-host", nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func listen(t testing.TB, network string) *syslogtest.Server {
	t.Helper()
	addr := "127.0.0.1:0"
	if strings.HasPrefix(network, "unix") {
		addr = filepath.Join(t.TempDir(), "log.sock")
	}
	p, err := syslogtest.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func next(t testing.TB, p *syslogtest.Server) syslogtest.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := p.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkMessage checks every field of a received message against the record.
func checkMessage(t *testing.T, m syslogtest.Message, r stream.Record, facility Facility, sdid string) {
	t.Helper()
	if m.Facility != int(facility) || m.Severity != Severity(r.Priority) {
		t.Errorf("facility/severity = %d/%d, want %d/%d", m.Facility, m.Severity, facility, Severity(r.Priority))
	}
	if !m.Time.Equal(r.Time.Truncate(time.Microsecond)) {
		t.Errorf("time = %v, want %v", m.Time, r.Time)
	}
	if m.Hostname != "riposte-host" || m.AppName != "riposte" || m.ProcID != strconv.Itoa(testPID) || m.MsgID != r.Type {
		t.Errorf("header = %q %q %q %q", m.Hostname, m.AppName, m.ProcID, m.MsgID)
	}
	if len(m.StructuredData) != 1 || m.StructuredData[0].ID != sdid {
		t.Fatalf("structured data = %+v", m.StructuredData)
	}
	want := map[string]string{
		"id": r.ID, "kind": string(r.Kind), "priority": r.Priority.String(), "rule": r.Rule,
		"container_id": r.ContainerID, "container_name": r.ContainerName, "container_image": r.ContainerImage,
		"incident": r.Incident, "alert_id": r.AlertID, "host": r.Hostname,
	}
	for k, v := range want {
		if v == "" {
			delete(want, k)
		}
	}
	got := m.StructuredData[0].Map()
	if len(got) != len(want) {
		t.Errorf("params = %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("param %s = %q, want %q", k, got[k], v)
		}
	}
	if !m.BOM || string(m.Msg) != string(r.JSON) {
		t.Errorf("MSG (bom %v) = %s\nwant %s", m.BOM, m.Msg, r.JSON)
	}
}

func TestWriteTransports(t *testing.T) {
	for _, network := range []string{"udp", "tcp", "unix", "unixgram"} {
		t.Run(network, func(t *testing.T) {
			p := listen(t, network)
			s := newSyslog(t, Config{Network: network, Address: p.Addr(), Facility: 10})
			ctx := context.Background()
			recs := []stream.Record{alertRecord(t, testAlert()), journalRecord(t)}
			for _, r := range recs {
				if err := s.Write(ctx, r); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range recs {
				checkMessage(t, next(t, p), r, 10, DefaultSDID)
			}
			if network == "tcp" || network == "unix" {
				if n := p.Accepted(); n != 1 {
					t.Errorf("receiver accepted %d connections, want 1 (the connection is kept)", n)
				}
			}
		})
	}
}

// The exact bytes of one message, against the RFC's own grammar.
func TestFormatExact(t *testing.T) {
	s := newSyslog(t, Config{Network: "udp", Address: "127.0.0.1:514", SDID: "ir@99999", BOM: new(bool)})
	a := testAlert()
	a.OutputFields = map[string]any{"container.id": "c1"}
	r := alertRecord(t, a)
	got, err := s.Format(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `<133>1 2026-11-20T09:14:03.512348Z riposte-host riposte 4242 alert [ir@99999 id="6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41" kind="alert" priority="Notice" rule="Terminal \"shell\" in [container\] \\ é" container_id="c1" incident="inc-20261120-1" alert_id="6f1c2a9e-1d2b-4c55-9a10-3f0e8b7d2c41" host="node-3"] ` + string(r.JSON)
	if string(got) != want {
		t.Errorf("Format =\n%s\nwant\n%s", got, want)
	}
}

func TestSeverityAndFacility(t *testing.T) {
	p := listen(t, "udp")
	want := map[alert.Priority]int{
		alert.PriorityEmergency: 0, alert.PriorityAlert: 1, alert.PriorityCritical: 2, alert.PriorityError: 3,
		alert.PriorityWarning: 4, alert.PriorityNotice: 5, alert.PriorityInformational: 6, alert.PriorityDebug: 7,
	}
	for _, fac := range []string{"local0", "authpriv", "daemon", "local7"} {
		var f Facility
		if err := f.UnmarshalText([]byte(fac)); err != nil {
			t.Fatal(err)
		}
		s := newSyslog(t, Config{Network: "udp", Address: p.Addr(), Facility: f})
		for _, prio := range alert.Priorities() {
			t.Run(fac+"/"+prio.String(), func(t *testing.T) {
				a := testAlert()
				a.Priority = prio
				if err := s.Write(context.Background(), alertRecord(t, a)); err != nil {
					t.Fatal(err)
				}
				m := next(t, p)
				if m.Severity != want[prio] || m.Facility != int(f) || f.String() != fac {
					t.Errorf("%s/%s: got facility %d severity %d, want %d %d", fac, prio, m.Facility, m.Severity, f, want[prio])
				}
			})
		}
	}
	var def Config
	if def.withDefaults().Facility != 16 {
		t.Error("default facility is not local0")
	}
}

func TestEscaping(t *testing.T) {
	p := listen(t, "tcp")
	s := newSyslog(t, Config{Network: "tcp", Address: p.Addr()})
	long := strings.Repeat("é", 200) // 400 bytes
	tests := []struct {
		name, rule, want string
	}{
		{"quote backslash bracket", `a"b\c]d[e`, `a"b\c]d[e`},
		{"escape lookalikes", `\" \\ \]`, `\" \\ \]`},
		{"control characters", "line1\nline2\r\x00\ttab\x7f", "line1 line2   tab "},
		{"invalid utf-8", "bad\xff\xfebytes", "bad\uFFFDbytes"},
		{"long value cut at a character", long, strings.Repeat("é", 128)},
		{"unicode", "Shell in ✓ 容器", "Shell in ✓ 容器"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAlert()
			a.Rule = tt.rule
			if err := s.Write(context.Background(), alertRecord(t, a)); err != nil {
				t.Fatal(err)
			}
			m := next(t, p)
			if got, _ := m.StructuredData[0].Get("rule"); got != tt.want {
				t.Errorf("rule = %q, want %q", got, tt.want)
			}
			if got := ParamValue(tt.rule); got != tt.want {
				t.Errorf("ParamValue = %q, want %q", got, tt.want)
			}
			// The exact rule always survives in the JSON (read generically:
			// the alert decoder refuses control characters in a rule).
			var back struct {
				Rule string `json:"rule"`
			}
			if err := json.Unmarshal(m.Msg, &back); err != nil {
				t.Fatal(err)
			}
			var wantRule string // encoding/json's own repair of invalid UTF-8
			if b, err := json.Marshal(tt.rule); err != nil || json.Unmarshal(b, &wantRule) != nil {
				t.Fatal(err)
			}
			if back.Rule != wantRule {
				t.Errorf("JSON rule = %q", back.Rule)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			p := listen(t, network)
			s := newSyslog(t, Config{Network: network, Address: p.Addr(), MaxMessageSize: 2048})
			a := testAlert()
			a.Output = strings.Repeat("ü", 3000)
			r := alertRecord(t, a)
			if err := s.Write(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			m := next(t, p)
			if len(m.Raw) > 2048 || len(m.Raw) < 2040 {
				t.Errorf("message is %d bytes, want at most 2048 and close to it", len(m.Raw))
			}
			if v, _ := m.StructuredData[0].Get("truncated"); v != strconv.Itoa(len(r.JSON)) {
				t.Errorf("truncated = %q, want %d", v, len(r.JSON))
			}
			if !utf8.Valid(m.Msg) || !strings.HasPrefix(string(r.JSON), string(m.Msg)) || len(m.Msg) == 0 {
				t.Errorf("MSG is not a prefix of the JSON cut at a character: %q", m.Msg)
			}

			// A record that fits is not marked.
			small := alertRecord(t, testAlert())
			if err := s.Write(context.Background(), small); err != nil {
				t.Fatal(err)
			}
			if _, ok := next(t, p).StructuredData[0].Get("truncated"); ok {
				t.Error("small record marked truncated")
			}
		})
	}
}

func TestInvalidRecordIsPermanent(t *testing.T) {
	s := newSyslog(t, Config{Network: "udp", Address: "127.0.0.1:9"})
	r := alertRecord(t, testAlert())
	r.JSON = []byte("{\"a\":\n1}")
	err := s.Write(context.Background(), r)
	if err == nil || actions.IsRetryable(err) || !strings.Contains(err.Error(), "json is not one line") {
		t.Errorf("err = %v (retryable %v)", err, actions.IsRetryable(err))
	}
}

// The receiver restarts: connections are dropped, or the receiver is gone
// for a while and comes back on the same address.
func TestTCPReconnect(t *testing.T) {
	ctx := context.Background()
	p := listen(t, "tcp")
	addr := p.Addr()
	s := newSyslog(t, Config{Network: "tcp", Address: addr, Timeout: 2 * time.Second})
	r := alertRecord(t, testAlert())

	if err := s.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	next(t, p)

	// Dropped connection: the next record must arrive, on a new connection.
	p.DropConnections()
	waitClosed(t, s)
	for i := 0; i < 3; i++ {
		j := journalRecord(t)
		j.ID = strconv.Itoa(100 + i)
		if err := s.Write(ctx, j); err != nil {
			t.Fatalf("write %d after drop: %v", i, err)
		}
		if m := next(t, p); m.StructuredData[0].Map()["id"] != j.ID {
			t.Errorf("got record %q, want %q", m.StructuredData[0].Map()["id"], j.ID)
		}
	}
	if n := p.Accepted(); n != 2 {
		t.Errorf("accepted %d connections, want 2", n)
	}

	// Receiver down: retryable errors, no panic, nothing half sent.
	p.Close()
	waitClosed(t, s)
	err := s.Write(ctx, r)
	if err == nil || !actions.IsRetryable(err) {
		t.Fatalf("write to a stopped receiver: err = %v, want retryable", err)
	}
	if !strings.Contains(err.Error(), "write syslog record alert/"+r.ID) {
		t.Errorf("error does not name the record: %v", err)
	}

	// Receiver back on the same address: the same record goes through.
	p2, err := syslogtest.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := s.Write(ctx, r); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	checkMessage(t, next(t, p2), r, DefaultFacility, DefaultSDID)
}

// Local syslog daemons recreate /dev/log when they restart.
func TestUnixgramRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "log")
	p, err := syslogtest.Listen("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	s := newSyslog(t, Config{Network: "unixgram", Address: path})
	r := alertRecord(t, testAlert())
	if err := s.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	next(t, p)
	p.Close()
	if err := s.Write(ctx, r); err == nil || !actions.IsRetryable(err) {
		t.Fatalf("write with the daemon gone: %v, want retryable", err)
	}
	p2, err := syslogtest.Listen("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := s.Write(ctx, r); err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	checkMessage(t, next(t, p2), r, DefaultFacility, DefaultSDID)
}

// A receiver that accepts and never reads: Write gives up at its deadline,
// or as soon as ctx is cancelled, with a retryable error.
func TestStalledReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	first := make(chan net.Conn, 1)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if len(held) == 0 {
				first <- c
			}
			held = append(held, c) // never read
		}
	}()
	defer func() {
		ln.Close()
		<-accepted
		for _, c := range held {
			c.Close()
		}
	}()
	s := newSyslog(t, Config{Network: "tcp", Address: ln.Addr().String(), MaxMessageSize: 1 << 20, Timeout: time.Minute})
	a := testAlert()
	a.Output = strings.Repeat("x", 1<<20)
	r := alertRecord(t, a)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var started, finished atomic.Int64
	go func() {
		for {
			started.Add(1)
			err := s.Write(ctx, r)
			finished.Add(1)
			if err != nil {
				done <- err
				return
			}
		}
	}()
	var held0 net.Conn
	select {
	case held0 = <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never connected")
	}
	// The socket buffers are full when a Write is in flight and the
	// receiver's queue has stopped growing between two polls.
	last := -1
	testutil.Eventually(t, 10*time.Second, func() bool {
		q := receiveQueue(held0)
		stalled := q > 0 && q == last && started.Load() > finished.Load()
		last = q
		return stalled
	}, "the writer never blocked on a full receiver")
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if !actions.IsRetryable(err) || !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want retryable context.Canceled", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("cancel took %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Write did not return after ctx was cancelled")
	}
}

func TestNonTransparentFraming(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var all []byte
		buf := make([]byte, 4096)
		for strings.Count(string(all), "\n") < 2 {
			n, err := c.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				break
			}
		}
		got <- all
	}()
	s := newSyslog(t, Config{Network: "tcp", Address: ln.Addr().String(), Framing: NonTransparent})
	a := testAlert()
	a.Output = "two\nlines" // escaped in JSON: never a raw LF on the wire
	a.Rule = "rule\nwith LF"
	recs := []stream.Record{alertRecord(t, a), journalRecord(t)}
	for _, r := range recs {
		if err := s.Write(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(<-got), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %q", len(lines), lines)
	}
	for i, l := range lines {
		m, err := syslogtest.Parse([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Msg) != string(recs[i].JSON) {
			t.Errorf("line %d MSG = %s", i, m.Msg)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"udp ok", Config{Network: "udp", Address: "127.0.0.1:514"}, ""},
		{"unixgram ok", Config{Network: "unixgram", Address: "/dev/log", Facility: 10}, ""},
		{"nothing", Config{}, "syslog config: network: missing (udp, tcp, unix or unixgram)"},
		{"bad network", Config{Network: "tls", Address: "x:1"}, `syslog config: network: unknown "tls" (want udp, tcp, unix or unixgram)`},
		{"no port", Config{Network: "tcp", Address: "logs.example"}, `syslog config: address: want host:port for tcp, got "logs.example"`},
		{"no path", Config{Network: "unix"}, "syslog config: address: missing (a socket path such as /dev/log)"},
		{"hostname", Config{Network: "udp", Address: "h:1", Hostname: "my host"}, `syslog config: hostname: want 1 to 255 printable US-ASCII characters without spaces, got "my host"`},
		{"app name", Config{Network: "udp", Address: "h:1", AppName: strings.Repeat("a", 49)}, "syslog config: app_name: want 1 to 48"},
		{"sd id without pen", Config{Network: "udp", Address: "h:1", SDID: "riposte"}, `syslog config: sd_id: want name@<enterprise number>`},
		{"sd id with quote", Config{Network: "udp", Address: "h:1", SDID: `a"b@1`}, `syslog config: sd_id:`},
		{"framing on udp", Config{Network: "udp", Address: "h:1", Framing: NonTransparent}, "syslog config: framing: only applies to tcp and unix, not udp"},
		{"tiny max", Config{Network: "tcp", Address: "h:1", MaxMessageSize: 100}, "syslog config: max_message_size: at least 480 bytes (RFC 5424 6.1), got 100"},
		{"udp max", Config{Network: "udp", Address: "h:1", MaxMessageSize: 70000}, "syslog config: max_message_size: at most 65507 bytes over udp, got 70000"},
		{"negative timeout", Config{Network: "udp", Address: "h:1", Timeout: -time.Second}, "syslog config: timeout: must not be negative, got -1s"},
		{"several", Config{Network: "tcp", AppName: "a b"}, "syslog config: address: missing (host:port)\napp_name: want"},
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
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Validate() = %v\nwant prefix   %q", err, tt.want)
			}
			if _, nerr := New(tt.cfg, Deps{}); nerr == nil || actions.IsRetryable(nerr) {
				t.Errorf("New accepted a bad config or called it retryable: %v", nerr)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"full", "network: tcp\naddress: 127.0.0.1:6514\nfacility: authpriv\nhostname: n1\napp_name: rip\nsd_id: ir@1.2\nbom: false\nframing: non-transparent\nmax_message_size: 64KiB\ntimeout: 3s\n", ""},
		{"facility number", "network: udp\naddress: h:1\nfacility: 17\n", ""},
		{"facility kern", "network: udp\naddress: h:1\nfacility: kern\n", "facility kern is reserved for the kernel"},
		{"facility unknown", "network: udp\naddress: h:1\nfacility: local9\n", `unknown syslog facility "local9"`},
		{"framing unknown", "network: tcp\naddress: h:1\nframing: lf\n", `unknown framing "lf"`},
		{"size unknown", "network: tcp\naddress: h:1\nmax_message_size: lots\n", "want a size such as"},
		{"unknown key", "network: tcp\naddress: h:1\nport: 514\n", "field port not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			err := dec.Decode(&c)
			if err == nil {
				err = c.Validate()
			}
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	var c Config
	if err := yaml.Unmarshal([]byte("network: tcp\naddress: 127.0.0.1:6514\nfacility: authpriv\nbom: false\nmax_message_size: 64KiB\ntimeout: 3s\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.Facility != 10 || *c.BOM || c.MaxMessageSize != 64<<10 || c.Timeout != 3*time.Second {
		t.Errorf("decoded %+v", c)
	}
}

// FuzzFormatParse: whatever the alert says, the message parses strictly
// and carries the values and the JSON intact.
func FuzzFormatParse(f *testing.F) {
	f.Add("Terminal shell", "payments", "shell $(id) ` ] \" \\", "c1", uint8(3))
	f.Add("a]\"\\[", "\x00\n\xff", "\xef\xbb\xbf", "", uint8(0))
	s, err := New(Config{Network: "udp", Address: "127.0.0.1:9", MaxMessageSize: 4096}, Deps{PID: 1})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rule, name, output, cid string, prio uint8) {
		a := testAlert()
		a.Rule, a.Output, a.Priority = rule, output, alert.Priority(prio%8)
		a.OutputFields = map[string]any{"container.name": name, "container.id": cid}
		r, err := stream.FromAlert(a, "")
		if err != nil {
			t.Skip()
		}
		msg, err := s.Format(r)
		if err != nil {
			t.Fatal(err)
		}
		m, err := syslogtest.Parse(msg)
		if err != nil {
			t.Fatalf("unparsable message %q: %v", msg, err)
		}
		if len(msg) > 4096 {
			t.Fatalf("message of %d bytes", len(msg))
		}
		sd := m.StructuredData[0].Map()
		if sd["rule"] != ParamValue(r.Rule) || sd["container_name"] != ParamValue(r.ContainerName) || sd["container_id"] != ParamValue(r.ContainerID) {
			t.Fatalf("params %q from record %+v", sd, r)
		}
		if m.Severity != 7-int(r.Priority) || m.MsgID != "alert" {
			t.Fatalf("header %+v", m)
		}
		if _, cut := sd["truncated"]; !cut && string(m.Msg) != string(r.JSON) {
			t.Fatalf("MSG %q, want %q", m.Msg, r.JSON)
		}
	})
}

// waitClosed waits until s's connection has seen the receiver's FIN, so that
// the next Write knows the receiver went away.
func waitClosed(t *testing.T, s *Syslog) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.conn == nil || !alive(s.conn)
	}, "the receiver's close never reached the client")
}
