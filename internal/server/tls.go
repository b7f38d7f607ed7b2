package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// Client certificate policies of TLSFiles.ClientAuth.
const (
	ClientAuthNone          = "none"
	ClientAuthVerifyIfGiven = "verify_if_given"
	ClientAuthRequire       = "require"
)

// TLSFiles names the PEM files of the intake's TLS listener.
type TLSFiles struct {
	CertFile string
	KeyFile  string
	// ClientCAFile verifies client certificates (mTLS); needed unless
	// ClientAuth is none.
	ClientCAFile string
	// ClientAuth: none (default), verify_if_given or require.
	ClientAuth string
}

// tlsState is one loaded generation of the files.
type tlsState struct {
	cert     *tls.Certificate
	clientCA *x509.CertPool
	stamp    string // the files' sizes and modification times
}

// TLSReloader serves the current certificate, key and client CA to every
// new handshake; Reload (on SIGHUP) and Watch (on file change) swap them
// atomically, so connections never see a half-loaded pair. Safe for
// concurrent use.
type TLSReloader struct {
	files TLSFiles
	auth  tls.ClientAuthType
	cur   atomic.Pointer[tlsState]
	log   *slog.Logger
	// bad is the stamp of files that failed to load (Watch's goroutine
	// only), so a broken pair is logged once, not every poll.
	bad string
}

// NewTLSReloader loads the files once; an error names the file at fault.
func NewTLSReloader(files TLSFiles, log *slog.Logger) (*TLSReloader, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("load tls: cert_file and key_file are both required")
	}
	r := &TLSReloader{files: files, log: log}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	switch files.ClientAuth {
	case "", ClientAuthNone:
		r.auth = tls.NoClientCert
	case ClientAuthVerifyIfGiven:
		r.auth = tls.VerifyClientCertIfGiven
	case ClientAuthRequire:
		r.auth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("load tls: client_auth: want none, verify_if_given or require, got %q", files.ClientAuth)
	}
	if r.auth != tls.NoClientCert && files.ClientCAFile == "" {
		return nil, fmt.Errorf("load tls: client_auth %s needs client_ca_file", files.ClientAuth)
	}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again; on error the previous certificate stays.
func (r *TLSReloader) Reload() error {
	st, err := r.load()
	if err != nil {
		return err
	}
	r.cur.Store(st)
	return nil
}

func (r *TLSReloader) load() (*tlsState, error) {
	stamp, err := r.stamp()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load tls certificate %s and key %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	st := &tlsState{cert: &cert, stamp: stamp}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("load tls client ca: %w", err)
		}
		st.clientCA = x509.NewCertPool()
		if !st.clientCA.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("load tls client ca: %s holds no PEM certificate", r.files.ClientCAFile)
		}
	}
	return st, nil
}

// stamp summarises the files' sizes and modification times.
func (r *TLSReloader) stamp() (string, error) {
	var s string
	for _, f := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("load tls: %w", err)
		}
		s += fmt.Sprintf("%d:%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

// Certificate is the certificate handshakes present now.
func (r *TLSReloader) Certificate() *tls.Certificate { return r.cur.Load().cert }

// Config is the listener's TLS configuration: TLS 1.2 at least, and the
// current files for each handshake.
func (r *TLSReloader) Config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			st := r.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				Certificates: []tls.Certificate{*st.cert},
				ClientAuth:   r.auth,
				ClientCAs:    st.clientCA,
			}, nil
		},
	}
}

// Watch reloads when hup delivers (SIGHUP) or, every poll, when the files'
// sizes or modification times changed, until ctx ends. A failed reload is
// logged and keeps the previous certificate.
func (r *TLSReloader) Watch(ctx context.Context, hup <-chan os.Signal, poll time.Duration) {
	if poll <= 0 {
		poll = 5 * time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			r.reloadLogged("signal")
		case <-t.C:
			if s, err := r.stamp(); err == nil && s != r.cur.Load().stamp && s != r.bad {
				if !r.reloadLogged("files changed") {
					r.bad = s
				}
			}
		}
	}
}

func (r *TLSReloader) reloadLogged(why string) bool {
	if err := r.Reload(); err != nil {
		r.log.Error("reload tls certificate; keeping the previous one", "why", why, "err", err)
		return false
	}
	r.log.Info("tls certificate reloaded", "why", why, "cert_file", r.files.CertFile)
	return true
}
