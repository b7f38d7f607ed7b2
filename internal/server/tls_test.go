package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/riposte-sec/riposte/internal/metrics"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for cn (a server certificate
// for 127.0.0.1 when server, else a client certificate).
func (ca *testCA) issue(t *testing.T, cn string, serial int64, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsFixture is a CA, a server certificate in files, and a running TLS
// server with the given client policy.
type tlsFixture struct {
	ca       *testCA
	files    TLSFiles
	reloader *TLSReloader
	addr     string
}

func startTLS(t *testing.T, clientAuth string, metricsToken string) *tlsFixture {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t, "riposte test ca")
	cert, key := ca.issue(t, "riposte intake", 2, true)
	f := TLSFiles{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
		ClientCAFile: filepath.Join(dir, "ca.pem"), ClientAuth: clientAuth}
	writeFile(t, f.CertFile, cert)
	writeFile(t, f.KeyFile, key)
	writeFile(t, f.ClientCAFile, ca.pem)
	r, err := NewTLSReloader(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := Config{Tokens: []string{token}, TLS: r.Config()}
	if metricsToken != "" {
		cfg.MetricsTokens = []string{metricsToken}
	}
	s, err := New(cfg, Deps{Inbox: &memInbox{}, Metrics: metrics.New(reg), Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &tlsFixture{ca: ca, files: f, reloader: r, addr: ln.Addr().String()}
}

// client trusts the fixture's CA and presents cert, when given.
func (fx *tlsFixture) client(t *testing.T, cert *tls.Certificate) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(fx.ca.cert)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func postAlert(c *http.Client, addr string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/alerts", strings.NewReader(oneAlert))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestTLSIntake(t *testing.T) {
	fx := startTLS(t, ClientAuthNone, "")
	resp, err := postAlert(fx.client(t, nil), fx.addr)
	if err != nil {
		t.Fatalf("post over tls: %v", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Fatalf("connection state %+v: want TLS 1.2 or later", resp.TLS)
	}
	// Plain HTTP to the TLS port gets no answer from the intake.
	plain := &http.Client{Timeout: 5 * time.Second}
	if r, err := plain.Post("http://"+fx.addr+"/v1/alerts", "application/json", strings.NewReader(oneAlert)); err == nil {
		r.Body.Close()
		if r.StatusCode == http.StatusAccepted {
			t.Fatal("plain HTTP accepted on the TLS listener")
		}
	}
	// TLS 1.1 is refused.
	old := fx.client(t, nil)
	old.Transport.(*http.Transport).TLSClientConfig.MaxVersion = tls.VersionTLS11
	if _, err := postAlert(old, fx.addr); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func TestMutualTLS(t *testing.T) {
	fx := startTLS(t, ClientAuthRequire, "")
	if _, err := postAlert(fx.client(t, nil), fx.addr); err == nil {
		t.Fatal("client without a certificate: request succeeded, want a failed handshake")
	}
	other := newTestCA(t, "someone else")
	oc, ok := other.issue(t, "falcosidekick", 3, false)
	bad, err := tls.X509KeyPair(oc, ok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := postAlert(fx.client(t, &bad), fx.addr); err == nil {
		t.Fatal("client certificate from another CA: request succeeded")
	}
	cc, ck := fx.ca.issue(t, "falcosidekick", 4, false)
	good, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := postAlert(fx.client(t, &good), fx.addr)
	if err != nil {
		t.Fatalf("client certificate signed by the CA: %v", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
}

func presented(t *testing.T, fx *tlsFixture) *x509.Certificate {
	t.Helper()
	resp, err := postAlert(fx.client(t, nil), fx.addr)
	if err != nil {
		t.Fatal(err)
	}
	return resp.TLS.PeerCertificates[0]
}

func TestTLSReload(t *testing.T) {
	fx := startTLS(t, ClientAuthNone, "")
	if got := presented(t, fx).SerialNumber.Int64(); got != 2 {
		t.Fatalf("serial %d presented, want 2", got)
	}
	// A broken pair is refused and the old certificate stays.
	writeFile(t, fx.files.KeyFile, []byte("not a key"))
	if err := fx.reloader.Reload(); err == nil || !strings.Contains(err.Error(), fx.files.CertFile) {
		t.Fatalf("reload with a broken key: %v, want an error naming the files", err)
	}
	if got := presented(t, fx).SerialNumber.Int64(); got != 2 {
		t.Fatalf("after a failed reload serial %d presented, want 2", got)
	}
	// SIGHUP (a signal on the watch channel) loads the new pair.
	cert, key := fx.ca.issue(t, "riposte intake", 7, true)
	writeFile(t, fx.files.CertFile, cert)
	writeFile(t, fx.files.KeyFile, key)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal, 1)
	go fx.reloader.Watch(ctx, hup, time.Hour)
	hup <- os.Interrupt
	waitSerial(t, fx, 7)

	// A change of the files alone is noticed by the poll.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go fx.reloader.Watch(ctx2, nil, 20*time.Millisecond)
	cert, key = fx.ca.issue(t, "riposte intake", 9, true)
	writeFile(t, fx.files.CertFile, cert)
	writeFile(t, fx.files.KeyFile, key)
	// Size or mtime must differ for the poll to see it; touch to be sure.
	later := time.Now().Add(time.Minute)
	for _, f := range []string{fx.files.CertFile, fx.files.KeyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	waitSerial(t, fx, 9)
}

func waitSerial(t *testing.T, fx *tlsFixture, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for fx.reloader.Certificate().Leaf == nil || fx.reloader.Certificate().Leaf.SerialNumber.Int64() != want {
		if time.Now().After(deadline) {
			t.Fatalf("certificate serial %d not loaded within 5s", want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	if got := presented(t, fx).SerialNumber.Int64(); got != want {
		t.Fatalf("server presents serial %d, want %d", got, want)
	}
}

func TestNewTLSReloaderErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name  string
		files TLSFiles
		want  string
	}{
		{"no key", TLSFiles{CertFile: missing}, "cert_file and key_file"},
		{"bad policy", TLSFiles{CertFile: missing, KeyFile: missing, ClientAuth: "always"}, `client_auth: want none, verify_if_given or require, got "always"`},
		{"require without ca", TLSFiles{CertFile: missing, KeyFile: missing, ClientAuth: ClientAuthRequire}, "needs client_ca_file"},
		{"missing file", TLSFiles{CertFile: missing, KeyFile: missing}, "missing.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTLSReloader(tc.files, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestMetricsToken(t *testing.T) {
	const mtok = "metrics-token-0123456789"
	fx := startTLS(t, ClientAuthNone, mtok)
	c := fx.client(t, nil)
	for _, tc := range []struct {
		name, auth string
		want       int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"intake token", "Bearer " + token, http.StatusForbidden},
		{"metrics token", "Bearer " + mtok, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, "https://"+fx.addr+"/metrics", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
