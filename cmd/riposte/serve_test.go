package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/riposte-sec/riposte/internal/testutil"
)

// TestServeBanner: the banner names the scheme the listener answers, so
// an operator copying the address reaches a TLS server with https://; with
// named intake tokens no unnamed one is generated.
func TestServeBanner(t *testing.T) {
	for _, tc := range []struct {
		name, tls, want string
		noToken         bool
	}{
		{"plain", "", `riposte serving on http://127\.0\.0\.1:\d+ `, false},
		{"tls", "tls: {cert_file: cert.pem, key_file: key.pem}\n", `riposte serving on https://127\.0\.0\.1:\d+ `, false},
		{"named intake tokens", "auth: {tokens: [{name: falco, scope: intake, file: falco.token}]}\n", `\(intake token: auth\.tokens; `, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "banner") // short: the socket path has at most 107 bytes
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			writeSelfSigned(t, dir)
			if err := os.WriteFile(filepath.Join(dir, "falco.token"), []byte("falco-token-0123456789\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			pb := "- playbook: note\n  actions: [{do: journal.note, with: {text: seen}}]\n"
			if err := os.WriteFile(filepath.Join(dir, "pb.yaml"), []byte(pb), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := "listen: 127.0.0.1:0\ndata: data\nplaybooks: [pb.yaml]\n" + tc.tls
			if err := os.WriteFile(filepath.Join(dir, "riposte.yaml"), []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			root := newRootCmd()
			var out testutil.SyncBuffer
			root.SetOut(&out)
			root.SetErr(&out)
			args := []string{"serve", "--config", filepath.Join(dir, "riposte.yaml"), "--token", "banner-token-0123456789"}
			if tc.noToken {
				t.Setenv("RIPOSTE_TOKEN", "")
				args = args[:3]
			}
			root.SetArgs(args)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- root.ExecuteContext(ctx) }()
			re := regexp.MustCompile(tc.want)
			testutil.Eventually(t, 20*time.Second, func() bool { return re.MatchString(out.String()) }, "banner %s in %q", tc.want, &out)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("serve: %v\n%s", err, out.String())
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "token")); tc.noToken && err == nil {
				t.Error("a token was generated beside the named intake tokens")
			}
		})
	}
}

func writeSelfSigned(t *testing.T, dir string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "riposte"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, blk := range map[string]*pem.Block{"cert.pem": {Type: "CERTIFICATE", Bytes: der}, "key.pem": {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(fmt.Errorf("write %s: %w", name, err))
		}
	}
}
