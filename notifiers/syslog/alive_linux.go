package syslog

import (
	"net"
	"syscall"
)

// alive reports whether a stream connection is still open, without
// blocking: TCP syslog has no acknowledgements, so a record written on a
// connection the receiver already closed (it restarted) would be accepted by
// the kernel and lost. Receivers never send anything on a syslog
// connection; what one sends anyway is read and discarded here.
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := true
	var buf [512]byte
	err = rc.Read(func(fd uintptr) bool {
		for range 64 {
			n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN || err == syscall.EWOULDBLOCK:
				return true // nothing pending: open
			case err == syscall.EINTR:
				continue
			case err != nil || n == 0:
				open = false // error, or end of stream
				return true
			}
		}
		return true
	})
	return err == nil && open
}
