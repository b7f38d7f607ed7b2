package syslogtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
)

// Received is one message, or the error a frame or message raised.
type Received struct {
	Message Message
	Err     error
}

// Server is a running receiver.
type Server struct {
	network string
	addr    string
	ln      net.Listener   // stream transports
	pc      net.PacketConn // datagram transports

	out chan Received

	mu       sync.Mutex
	conns    map[net.Conn]bool
	accepted int
	closed   bool
	wg       sync.WaitGroup
}

// Listen starts a receiver. network is udp or tcp (address such as
// 127.0.0.1:0), unix (stream) or unixgram (address is a socket path, which
// must not exist).
func Listen(network, address string) (*Server, error) {
	s := &Server{network: network, out: make(chan Received, 4096), conns: map[net.Conn]bool{}}
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, fmt.Errorf("listen %s %s: %w", network, address, err)
		}
		s.ln, s.addr = ln, ln.Addr().String()
		s.wg.Add(1)
		go s.accept()
	case "udp", "udp4", "udp6", "unixgram":
		pc, err := net.ListenPacket(network, address)
		if err != nil {
			return nil, fmt.Errorf("listen %s %s: %w", network, address, err)
		}
		s.pc, s.addr = pc, pc.LocalAddr().String()
		s.wg.Add(1)
		go s.readPackets()
	default:
		return nil, fmt.Errorf("listen: unsupported network %q", network)
	}
	return s, nil
}

// Addr is the address to send to: host:port, or the socket path.
func (s *Server) Addr() string { return s.addr }

// Network is the network the server listens on.
func (s *Server) Network() string { return s.network }

// Accepted counts the stream connections accepted so far.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// DropConnections closes every open stream connection, as a restarted
// receiver would; the listener stays up.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.Close()
	}
}

// Next returns the next message, the error of a frame or message that did
// not parse, or ctx's error when nothing arrives in time.
func (s *Server) Next(ctx context.Context) (Message, error) {
	select {
	case r := <-s.out:
		return r.Message, r.Err
	case <-ctx.Done():
		return Message{}, fmt.Errorf("wait for a syslog message on %s %s: %w", s.network, s.addr, ctx.Err())
	}
}

// Close stops the receiver. Messages already received can still be read
// with Next.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	var err error
	if s.ln != nil {
		err = s.ln.Close()
	}
	if s.pc != nil {
		err = s.pc.Close()
	}
	s.wg.Wait()
	if s.network == "unix" || s.network == "unixgram" {
		os.Remove(s.addr)
	}
	return err
}

func (s *Server) deliver(raw []byte, err error) {
	if err != nil {
		s.out <- Received{Err: err}
		return
	}
	m, err := Parse(raw)
	s.out <- Received{Message: m, Err: err}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		frame, err := ReadFrame(r)
		if err != nil {
			// A clean close between frames, or our own Close/Drop, is
			// not a finding; a torn or malformed frame is.
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || s.dropped(c) {
				return
			}
			s.deliver(nil, err)
			return
		}
		s.deliver(frame, nil)
	}
}

func (s *Server) dropped(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed || !s.conns[c]
}

func (s *Server) readPackets() {
	defer s.wg.Done()
	buf := make([]byte, 1<<17)
	for {
		n, _, err := s.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		s.deliver(append([]byte(nil), buf[:n]...), nil)
	}
}
