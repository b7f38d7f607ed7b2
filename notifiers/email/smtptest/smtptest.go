// Package smtptest is a local SMTP server for tests, built on
// emersion/go-smtp: it listens on 127.0.0.1 with a self-signed certificate,
// offers STARTTLS (or speaks implicit TLS), AUTH PLAIN and LOGIN (only over
// TLS, as real submission servers do), and keeps every message it accepts
// with the facts a test checks: envelope, raw data, whether the session was
// encrypted when DATA arrived, and who authenticated. Failures can be queued
// for MAIL, RCPT or DATA (4xx temporary, 5xx permanent).
//
// A Server is safe for concurrent use; Close stops it.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options shape the server.
type Options struct {
	// StartTLS offers STARTTLS on a plain listener.
	StartTLS bool
	// ImplicitTLS speaks TLS from the first byte (SMTPS).
	ImplicitTLS bool
	// Users enables AUTH PLAIN and LOGIN with these credentials.
	Users map[string]string
	// RequireAuth refuses MAIL before AUTH.
	RequireAuth bool
}

// Mail is one accepted message.
type Mail struct {
	From     string
	To       []string
	Data     []byte
	TLS      bool   // the session was encrypted when DATA arrived
	AuthUser string // "" when not authenticated
	AuthMech string
	Helo     string
}

// Failure is an SMTP error queued for the next command of a stage.
type Failure struct {
	Stage   string // "MAIL", "RCPT" or "DATA"
	Code    int
	Message string
}

// Server is a local SMTP server.
type Server struct {
	srv          *smtp.Server
	ln           net.Listener
	cert         []byte // PEM
	opts         Options
	mu           sync.Mutex
	mails        []Mail
	fails        []Failure
	authFailures int
}

// New starts a server.
func New(opts Options) (*Server, error) {
	certPEM, tlsCert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Server{cert: certPEM, opts: opts}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "smtptest.riposte.test"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	tc := &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12}
	var ln net.Listener
	switch {
	case opts.ImplicitTLS:
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tc)
		srv.TLSConfig = tc
	case opts.StartTLS:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		srv.TLSConfig = tc
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		return nil, err
	}
	s.srv, s.ln = srv, ln
	go func() { _ = srv.Serve(ln) }()
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { _ = s.srv.Close() }

// Host and Port are where it listens.
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the TCP port.
func (s *Server) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host(), strconv.Itoa(s.Port())) }

// CAFile writes the server's certificate (its own CA) into dir and returns
// the path, for the client's ca_file.
func (s *Server) CAFile(dir string) (string, error) {
	p := filepath.Join(dir, "smtptest-ca.pem")
	return p, os.WriteFile(p, s.cert, 0o600)
}

// Mails returns the accepted messages, in order.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mails)
}

// AuthFailures counts refused AUTH attempts.
func (s *Server) AuthFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authFailures
}

// FailNext queues a failure.
func (s *Server) FailNext(f Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, f)
}

func (s *Server) takeFailure(stage string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.fails {
		if f.Stage == stage {
			s.fails = append(s.fails[:i], s.fails[i+1:]...)
			first := f.Code / 100
			return &smtp.SMTPError{Code: f.Code, EnhancedCode: smtp.EnhancedCode{first, 0, 0}, Message: f.Message}
		}
	}
	return nil
}

type session struct {
	s        *Server
	c        *smtp.Conn
	from     string
	to       []string
	authUser string
	authMech string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, c: c}, nil
}

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.opts.Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, "LOGIN"}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if want, ok := ss.s.opts.Users[user]; ok && want == pass {
			ss.authUser, ss.authMech = user, mech
			return nil
		}
		ss.s.mu.Lock()
		ss.s.authFailures++
		ss.s.mu.Unlock()
		return smtp.ErrAuthFailed
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return errors.New("identities not supported")
			}
			return check(user, pass)
		}), nil
	case "LOGIN":
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.RequireAuth && ss.authUser == "" {
		return smtp.ErrAuthRequired
	}
	if err := ss.s.takeFailure("MAIL"); err != nil {
		return err
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := ss.s.takeFailure("RCPT"); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, r); err != nil {
		return err
	}
	if err := ss.s.takeFailure("DATA"); err != nil {
		return err
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	ss.s.mails = append(ss.s.mails, Mail{From: ss.from, To: slices.Clone(ss.to), Data: buf.Bytes(), TLS: isTLS,
		AuthUser: ss.authUser, AuthMech: ss.authMech, Helo: ss.c.Hostname()})
	return nil
}

func (ss *session) Reset() { ss.from, ss.to = "", nil }

func (ss *session) Logout() error { return nil }

// loginServer is the server side of the LOGIN mechanism (draft-murchison-
// sasl-login): challenges "Username:" and "Password:".
type loginServer struct {
	step  int
	user  string
	check func(user, pass string) error
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) > 0 { // initial response carries the username
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}

// selfSigned makes a one-hour certificate for 127.0.0.1 and localhost.
func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest.riposte.test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	return certPEM, c, err
}
