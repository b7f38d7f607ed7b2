package pgtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Cut is how a Proxy partitions its clients from the server.
type Cut int

const (
	// Reset resets every open connection (RST to both ends) and every
	// new one as soon as it is accepted: the server's side sees the
	// client gone at once and rolls its transaction back.
	Reset Cut = iota + 1
	// Blackhole stops forwarding, in both directions, on every open and
	// new connection, closes included, as a network that drops packets:
	// nothing is lost, it waits in the proxy until Heal, as TCP's
	// retransmissions would deliver it once the network came back.
	Blackhole
)

// Proxy forwards TCP connections to a server until it is cut. It is safe
// for concurrent use; Close stops it and closes every connection.
type Proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	cond   *sync.Cond // signalled when cut changes
	cut    Cut        // 0: forwarding
	conns  map[*proxied]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxied struct{ client, server *net.TCPConn }

// NewProxy listens on 127.0.0.1 and forwards to target (host:port).
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start proxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*proxied]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is where clients connect.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut partitions the clients from the server the way c says.
func (p *Proxy) Cut(c Cut) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = c
	if c == Reset {
		for pc := range p.conns {
			pc.reset()
			delete(p.conns, pc)
		}
	}
	p.cond.Broadcast()
}

// Heal forwards again; what a blackhole held is delivered.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = 0
	p.cond.Broadcast()
}

// Close stops the proxy and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	p.ln.Close()
	for pc := range p.conns {
		pc.reset()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

func (pc *proxied) reset() {
	for _, c := range []*net.TCPConn{pc.client, pc.server} {
		if c != nil {
			_ = c.SetLinger(0) // close sends RST
			c.Close()
		}
	}
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		client := c.(*net.TCPConn)
		p.mu.Lock()
		cut := p.cut
		p.mu.Unlock()
		if cut == Reset {
			(&proxied{client: client}).reset()
			continue
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// serve connects to the server (once forwarding is allowed) and copies
// both ways.
func (p *Proxy) serve(client *net.TCPConn) {
	if !p.wait() {
		(&proxied{client: client}).reset()
		return
	}
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		(&proxied{client: client}).reset()
		return
	}
	pc := &proxied{client: client, server: s.(*net.TCPConn)}
	p.mu.Lock()
	if p.closed || p.cut == Reset {
		p.mu.Unlock()
		pc.reset()
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Go(func() { p.copy(pc.server, pc.client) })
	wg.Go(func() { p.copy(pc.client, pc.server) })
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
	pc.client.Close()
	pc.server.Close()
}

// copy forwards from src to dst, each chunk and the end of the stream
// only while the proxy forwards.
func (p *Proxy) copy(dst, src *net.TCPConn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !p.wait() {
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				_ = dst.CloseWrite()
			}
			return
		}
	}
}

// wait blocks while the proxy is blackholed; it reports false once the
// connection is to end (reset, or the proxy closed).
func (p *Proxy) wait() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.cut == Blackhole && !p.closed {
		p.cond.Wait()
	}
	return p.cut != Reset && !p.closed
}
