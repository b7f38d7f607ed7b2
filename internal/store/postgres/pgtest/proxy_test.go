package pgtest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// echo serves lines back on 127.0.0.1 until the test ends.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, deadline time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(deadline))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err == nil && line != "ping\n" {
		return errors.New("echoed " + line)
	}
	return err
}

// TestProxyCuts: a reset cut breaks open connections and refuses new
// ones; a blackhole holds a message until Heal delivers it.
func TestProxyCuts(t *testing.T) {
	p, err := NewProxy(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, 5*time.Second); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.Cut(Reset)
	if err := roundTrip(c, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("open connection after a reset cut: %v, want it broken", err)
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		err = roundTrip(c2, 5*time.Second)
		c2.Close()
	}
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection during a reset cut: %v, want it reset", err)
	}

	p.Heal()
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := roundTrip(c3, 5*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}
	p.Cut(Blackhole)
	if err := roundTrip(c3, 200*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("through a blackhole: %v, want a timeout", err)
	}
	p.Heal()
	// The ping sent into the blackhole is delivered now.
	_ = c3.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := bufio.NewReader(c3).ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("after heal, the held message: %q, %v", line, err)
	}
}

// TestTCP: a server started with TCP takes connections on 127.0.0.1, also
// through a proxy, and its socket URL still works.
func TestTCP(t *testing.T) {
	var sh Shared
	sh.Options.TCP = true
	defer sh.Stop()
	u := sh.Database(t)
	srv := sh.Get(t)
	p, err := NewProxy(srv.TCPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, url := range []string{u, URLAt(srv.TCPAddr(), DBName(u)), URLAt(p.Addr(), DBName(u))} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := pgx.Connect(ctx, url)
		if err == nil {
			var one int
			err = conn.QueryRow(ctx, "SELECT 1").Scan(&one)
			conn.Close(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
	}
}
