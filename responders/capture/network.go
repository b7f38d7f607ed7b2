package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// ifaceSock is one AF_PACKET socket bound to one interface of the
// container's network namespace. The socket keeps capturing there after
// the thread that created it left the namespace.
type ifaceSock struct {
	fd       int
	index    int    // ifindex inside the container's namespace
	name     string // eth0
	mac      string
	addrs    []string // CIDRs
	mtu      int
	hatype   uint16
	linkType layers.LinkType
	pcapID   int // interface id in the pcapng file
}

// htons converts a 16-bit value to network byte order, as AF_PACKET wants
// its protocol.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

// ARPHRD values of the link types riposte records.
const (
	arphrdEther    = 1
	arphrdLoopback = 772
	arphrdNone     = 0xfffe
	arphrdIPIP     = 768
)

// linkTypeOf maps an interface's hardware type to the pcapng link type of
// what a SOCK_RAW packet socket reads from it; false for types not
// recorded.
func linkTypeOf(hatype uint16) (layers.LinkType, bool) {
	switch hatype {
	case arphrdEther, arphrdLoopback:
		return layers.LinkTypeEthernet, true
	case arphrdNone, arphrdIPIP:
		return layers.LinkTypeRaw, true
	}
	return 0, false
}

// errHostNetwork is returned when the container shares the host's network
// namespace: capturing there would record the whole host.
var errHostNetwork = errors.New("the container shares the host's network namespace (--network host): network capture would record the whole host, so it is skipped")

// openNetns opens one AF_PACKET socket per interface that is up in the
// network namespace of pid. It enters the namespace on a locked OS thread
// of its own, and leaves it before returning; a thread that cannot return
// to riposte's namespace is never reused (it exits with its goroutine).
// skipped lists interfaces left out and why.
func openNetns(procRoot string, pid int, rcvbuf int) (socks []*ifaceSock, skipped []string, err error) {
	type result struct {
		socks   []*ifaceSock
		skipped []string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		socks, skipped, err, restored := openInNetns(procRoot, pid, rcvbuf)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{socks, skipped, err}
	}()
	r := <-done
	return r.socks, r.skipped, r.err
}

// openInNetns runs on a locked OS thread. restored is false when the
// thread may still be in the container's namespace.
func openInNetns(procRoot string, pid int, rcvbuf int) (socks []*ifaceSock, skipped []string, err error, restored bool) {
	self, err := os.Open(fmt.Sprintf("%s/thread-self/ns/net", procRoot))
	if err != nil {
		return nil, nil, fmt.Errorf("open riposte's network namespace: %w", err), true
	}
	defer self.Close()
	target, err := os.Open(fmt.Sprintf("%s/%d/ns/net", procRoot, pid))
	if err != nil {
		return nil, nil, fmt.Errorf("open the network namespace of pid %d: %w", pid, err), true
	}
	defer target.Close()
	var a, b unix.Stat_t
	if err := unix.Fstat(int(self.Fd()), &a); err != nil {
		return nil, nil, fmt.Errorf("stat riposte's network namespace: %w", err), true
	}
	if err := unix.Fstat(int(target.Fd()), &b); err != nil {
		return nil, nil, fmt.Errorf("stat the container's network namespace: %w", err), true
	}
	if a.Ino == b.Ino && a.Dev == b.Dev {
		return nil, nil, errHostNetwork, true
	}
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, nil, fmt.Errorf("enter the network namespace of pid %d: %w", pid, err), true
	}
	socks, skipped, err = openSockets(rcvbuf)
	if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
		for _, s := range socks {
			unix.Close(s.fd)
		}
		return nil, nil, fmt.Errorf("return to riposte's network namespace: %w", rerr), false
	}
	return socks, skipped, err, true
}

// openSockets opens the sockets in the current thread's network namespace.
func openSockets(rcvbuf int) (socks []*ifaceSock, skipped []string, err error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("list the container's interfaces: %w", err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 {
			skipped = append(skipped, ifc.Name+" (down)")
			continue
		}
		s, err := openSocket(ifc, rcvbuf)
		if err != nil {
			for _, s := range socks {
				unix.Close(s.fd)
			}
			return nil, nil, err
		}
		if s == nil {
			skipped = append(skipped, ifc.Name+" (link type not recorded)")
			continue
		}
		socks = append(socks, s)
	}
	return socks, skipped, nil
}

func openSocket(ifc net.Interface, rcvbuf int) (*ifaceSock, error) {
	// Protocol 0: the socket receives nothing until it is bound to one
	// interface with ETH_P_ALL, so no packet of another interface slips in.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open a packet socket (needs CAP_NET_RAW): %w", err)
	}
	fail := func(what string, err error) (*ifaceSock, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s on %s: %w", what, ifc.Name, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fail("enable packet timestamps", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		return fail("bind a packet socket", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("read the link type", err)
	}
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if !ok {
		return fail("read the link type", fmt.Errorf("unexpected address %T", sa))
	}
	lt, ok := linkTypeOf(ll.Hatype)
	if !ok {
		unix.Close(fd)
		return nil, nil
	}
	s := &ifaceSock{fd: fd, index: ifc.Index, name: ifc.Name, mac: ifc.HardwareAddr.String(), mtu: ifc.MTU, hatype: ll.Hatype, linkType: lt}
	if addrs, err := ifc.Addrs(); err == nil {
		for _, a := range addrs {
			s.addrs = append(s.addrs, a.String())
		}
	}
	return s, nil
}

// packet is one packet read from an interface.
type packet struct {
	iface  *ifaceSock
	ts     time.Time
	data   []byte
	length int  // length on the wire
	out    bool // sent by the container
}

// read reads packets from s until stop is closed or the socket fails (the
// interface went away with the container), sending them to out. When stop
// closes, what the socket already holds is still read and sent: out's
// reader keeps reading until every reader returned.
func (s *ifaceSock) read(stop <-chan struct{}, snaplen int, out chan<- packet) error {
	buf := make([]byte, snaplen)
	oob := make([]byte, unix.CmsgSpace(16)*2)
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}}
	for {
		select {
		case <-stop:
			_, err := s.recvAll(buf, oob, out, maxDrainPackets)
			return err
		default:
		}
		n, err := unix.Poll(fds, 100)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("poll %s: %w", s.name, err)
		}
		if n == 0 {
			continue
		}
		if _, err := s.recvAll(buf, oob, out, 1024); err != nil {
			return err
		}
	}
}

// maxDrainPackets bounds what is read from a socket after the capture
// stopped.
const maxDrainPackets = 65536

// recvAll reads up to max packets the socket holds, without waiting.
func (s *ifaceSock) recvAll(buf, oob []byte, out chan<- packet, max int) (int, error) {
	for i := 0; i < max; i++ {
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, unix.MSG_TRUNC|unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				return i, nil
			}
			return i, fmt.Errorf("read %s: %w", s.name, err)
		}
		p := packet{iface: s, length: n, ts: timestamp(oob[:oobn])}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			p.out = ll.Pkttype == unix.PACKET_OUTGOING
			// On loopback every packet is seen going out and coming in;
			// keep one copy, as tcpdump does.
			if p.out && s.hatype == arphrdLoopback {
				continue
			}
		}
		p.data = append([]byte(nil), buf[:min(n, len(buf))]...)
		out <- p
	}
	return max, nil
}

// timestamp is the kernel's receive time from an SCM_TIMESTAMPNS control
// message, or now.
func timestamp(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Now()
}

// stats reads and resets the socket's kernel counters: packets that reached
// the socket and packets dropped because its buffer was full.
func (s *ifaceSock) stats() (received, dropped uint64) {
	st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, 0
	}
	return uint64(st.Packets), uint64(st.Drops)
}

func (s *ifaceSock) close() { unix.Close(s.fd) }

// describe is the interface's line in the pcapng interface description.
func (s *ifaceSock) describe() string {
	parts := []string{s.name}
	if s.mac != "" {
		parts = append(parts, "mac "+s.mac)
	}
	if len(s.addrs) > 0 {
		parts = append(parts, strings.Join(s.addrs, " "))
	}
	return strings.Join(parts, ", ")
}
