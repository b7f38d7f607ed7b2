package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the HMAC-SHA256 signature of a request:
//
//	X-Riposte-Signature: t=1763629200,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd
//
// t is the Unix time of sending, in seconds; v1 is the lowercase hex
// HMAC-SHA256, keyed with the endpoint's secret, of the bytes
// "<t>.<body>" (the decimal t, a dot, the raw request body). A receiver
// recomputes it, compares in constant time, and refuses a t too far from its
// clock (Verify does exactly that).
const SignatureHeader = "X-Riposte-Signature"

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(secret, ts, body)
}

func mac(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verify checks a SignatureHeader value against body: well formed, a v1
// that matches, and t within tolerance of now.
func Verify(header string, body, secret []byte, tolerance time.Duration, now time.Time) error {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return errors.New("verify webhook signature: malformed header")
		}
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	if ts == "" || sig == "" {
		return errors.New("verify webhook signature: t or v1 missing")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("verify webhook signature: t is not a Unix time")
	}
	if d := now.Sub(time.Unix(sec, 0)).Abs(); d > tolerance {
		return fmt.Errorf("verify webhook signature: timestamp %s away from now (tolerance %s)", d.Round(time.Second), tolerance)
	}
	want, err := hex.DecodeString(mac(secret, ts, body))
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(sig)
	if err != nil || !hmac.Equal(got, want) {
		return errors.New("verify webhook signature: signature does not match")
	}
	return nil
}
