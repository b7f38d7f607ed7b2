package syslog

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/riposte-sec/riposte/notifiers/stream"
)

// Config is the `syslog:` block of one stream output.
//
//	syslog:
//	  network: tcp                 # udp | tcp | unix (stream socket) | unixgram (datagram socket)
//	  address: 127.0.0.1:6514      # host:port, or a socket path such as /dev/log
//	  facility: local0             # default local0; authpriv keeps records out of /var/log/syslog on Debian
//	  # hostname: node-3           # default: the machine's host name
//	  # app_name: riposte
//	  # sd_id: riposte@32473       # SD-ID of the structured data element
//	  # bom: true                  # start MSG with a UTF-8 BOM (RFC 5424); false for receivers that keep it
//	  # framing: octet-counting    # stream transports: octet-counting (RFC 6587 3.4.1) | non-transparent (LF)
//	  # max_message_size: 8KiB     # longer records have their JSON cut (SD truncated="<bytes>")
//	  # timeout: 10s               # bounds one dial and one write
type Config struct {
	Network  string   `yaml:"network"`
	Address  string   `yaml:"address"`
	Facility Facility `yaml:"facility"`
	Hostname string   `yaml:"hostname"`
	AppName  string   `yaml:"app_name"`
	SDID     string   `yaml:"sd_id"`
	BOM      *bool    `yaml:"bom"`
	Framing  Framing  `yaml:"framing"`
	// MaxMessageSize bounds one syslog message, header and structured data
	// included (default 8KiB, rsyslog's default limit).
	MaxMessageSize stream.Size   `yaml:"max_message_size"`
	Timeout        time.Duration `yaml:"timeout"`
}

// Defaults.
const (
	DefaultAppName        = "riposte"
	DefaultSDID           = "riposte@32473"
	DefaultMaxMessageSize = 8 << 10
	DefaultTimeout        = 10 * time.Second
	// minMessageSize is what RFC 5424 section 6.1 says every receiver
	// must accept.
	minMessageSize = 480
	// maxUDPPayload is the largest UDP payload over IPv4.
	maxUDPPayload = 65507
)

// Facility is a syslog facility (RFC 5424 section 6.2.1). The zero value
// means the default, local0.
type Facility int

var facilityNames = map[string]Facility{
	"user": 1, "mail": 2, "daemon": 3, "auth": 4, "security": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// DefaultFacility is local0.
const DefaultFacility Facility = 16

// UnmarshalText accepts a facility name (user, daemon, auth, authpriv,
// local0 … local7, …; security is auth's old name, as in glibc and rsyslog)
// or its number, 1 to 23. kern (0) is the kernel's own.
func (f *Facility) UnmarshalText(b []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(b)))
	if v, ok := facilityNames[s]; ok {
		*f = v
		return nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= 23 {
		*f = Facility(n)
		return nil
	}
	if s == "kern" || s == "0" {
		return errors.New("facility kern is reserved for the kernel")
	}
	return fmt.Errorf("unknown syslog facility %q (want user, daemon, auth, authpriv, local0 … local7, or 1-23)", b)
}

// String is the facility's name.
func (f Facility) String() string {
	best := ""
	for name, v := range facilityNames {
		if v == f && name != "security" {
			best = name
		}
	}
	if best == "" {
		return strconv.Itoa(int(f))
	}
	return best
}

// Framing is how messages are delimited on stream transports.
type Framing string

// Framings (RFC 6587 section 3.4).
const (
	// OctetCounting: "MSG-LEN SP SYSLOG-MSG" (the default; what RFC 5425
	// and 6587 recommend, and what rsyslog, syslog-ng and Graylog read).
	OctetCounting Framing = "octet-counting"
	// NonTransparent: the message followed by LF (older receivers). Safe
	// here: riposte's messages never contain a raw LF.
	NonTransparent Framing = "non-transparent"
)

// UnmarshalText accepts octet-counting and non-transparent.
func (f *Framing) UnmarshalText(b []byte) error {
	switch v := Framing(strings.ToLower(string(b))); v {
	case OctetCounting, NonTransparent:
		*f = v
		return nil
	}
	return fmt.Errorf("unknown framing %q (want octet-counting or non-transparent)", b)
}

func (c Config) stream() bool { return c.Network == "tcp" || c.Network == "unix" }

// withDefaults fills what is unset (after Validate).
func (c Config) withDefaults() Config {
	if c.Facility == 0 {
		c.Facility = DefaultFacility
	}
	if c.AppName == "" {
		c.AppName = DefaultAppName
	}
	if c.SDID == "" {
		c.SDID = DefaultSDID
	}
	if c.BOM == nil {
		t := true
		c.BOM = &t
	}
	if c.Framing == "" {
		c.Framing = OctetCounting
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate checks the block and collects every problem.
func (c Config) Validate() error {
	var errs []error
	switch c.Network {
	case "udp", "tcp":
		if c.Address == "" {
			errs = append(errs, errors.New("address: missing (host:port)"))
		} else if _, port, err := net.SplitHostPort(c.Address); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("address: want host:port for %s, got %q", c.Network, c.Address))
		}
	case "unix", "unixgram":
		if c.Address == "" {
			errs = append(errs, errors.New("address: missing (a socket path such as /dev/log)"))
		}
	case "":
		errs = append(errs, errors.New("network: missing (udp, tcp, unix or unixgram)"))
	default:
		errs = append(errs, fmt.Errorf("network: unknown %q (want udp, tcp, unix or unixgram)", c.Network))
	}
	if c.Facility < 0 || c.Facility > 23 {
		errs = append(errs, fmt.Errorf("facility: %d out of range", int(c.Facility)))
	}
	if c.Hostname != "" && !headerValue(c.Hostname, 255) {
		errs = append(errs, fmt.Errorf("hostname: want 1 to 255 printable US-ASCII characters without spaces, got %q", c.Hostname))
	}
	if c.AppName != "" && !headerValue(c.AppName, 48) {
		errs = append(errs, fmt.Errorf("app_name: want 1 to 48 printable US-ASCII characters without spaces, got %q", c.AppName))
	}
	if c.SDID != "" && !validSDID(c.SDID) {
		errs = append(errs, fmt.Errorf("sd_id: want name@<enterprise number>, at most 32 printable US-ASCII characters without '=', ']', '\"' or spaces, got %q", c.SDID))
	}
	if c.Framing != "" && !c.stream() && c.Network != "" {
		errs = append(errs, fmt.Errorf("framing: only applies to tcp and unix, not %s", c.Network))
	}
	switch {
	case c.MaxMessageSize < 0:
		errs = append(errs, fmt.Errorf("max_message_size: must not be negative, got %d", c.MaxMessageSize))
	case c.MaxMessageSize > 0 && c.MaxMessageSize < minMessageSize:
		errs = append(errs, fmt.Errorf("max_message_size: at least %d bytes (RFC 5424 6.1), got %d", minMessageSize, c.MaxMessageSize))
	case c.Network == "udp" && c.MaxMessageSize > maxUDPPayload:
		errs = append(errs, fmt.Errorf("max_message_size: at most %d bytes over udp, got %d", maxUDPPayload, c.MaxMessageSize))
	case c.MaxMessageSize > stream.Size(maxFrame):
		errs = append(errs, fmt.Errorf("max_message_size: at most %s, got %s", stream.Size(maxFrame), c.MaxMessageSize))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("syslog config: %w", err)
	}
	return nil
}

// maxFrame bounds max_message_size (1MiB): far above any receiver's default.
const maxFrame = 1 << 20

// headerValue: 1*max PRINTUSASCII.
func headerValue(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 33 || s[i] > 126 {
			return false
		}
	}
	return true
}

// validSDID: an SD-NAME with "@" and a private enterprise number (names
// without "@" are reserved to IANA, RFC 5424 section 7.2).
func validSDID(s string) bool {
	if !headerValue(s, 32) || strings.ContainsAny(s, `="]`) {
		return false
	}
	name, pen, ok := strings.Cut(s, "@")
	if !ok || name == "" || pen == "" || strings.Contains(pen, "@") {
		return false
	}
	for _, part := range strings.Split(pen, ".") {
		if part == "" {
			return false
		}
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return false
			}
		}
	}
	return true
}
